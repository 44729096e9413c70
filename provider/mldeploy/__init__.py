"""mldeploy: ship ML models to inference services with Pulumi."""
