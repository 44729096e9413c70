"""Component resources built from mldeploy's dynamic resources."""
