"""The demo service on either target; the target is stack config, the program is the same.

    pulumi config set mldeploy:target azure            # or: local (the default)
    pulumi config set azure-native:location westeurope
    pulumi up

On ``azure`` this program creates, with pulumi-azure-native, a resource group,
storage account, key vault, Application Insights, a container registry and an
Azure ML workspace on them, and deploys the service there. To use an existing
workspace instead, set ``mldeploy:workspace`` to its ARM id. On ``local`` it
creates no Azure resource and runs on the embedded local target. Either way the
four mldeploy resources (ModelVersion, ServicePrincipal x2, BaseImage,
InferenceDeployment) come from the same ``ModelService`` call below.

The model, code and the two JSON files are the demo stack's. The base image
context is config (``mldeploy:baseImageContext``, relative to this directory;
default the demo's Debian base): Azure ML builds the environment with the
base image's conda, so for ``azure`` use ``base-conda`` (the document's
Ubuntu + Miniconda image, built on the registry).
"""

from pathlib import Path

import pulumi

from mldeploy import BaseImageSpec, ModelService

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "demo"
cfg = pulumi.Config("mldeploy")
target_kind = cfg.get("target") or "local"
if target_kind not in ("local", "azure"):
    raise ValueError(f"mldeploy:target must be 'local' or 'azure', not {target_kind!r}")


def azure_workspace() -> pulumi.Output[str]:
    """The workspace's ARM id: the configured one, or a new workspace with everything it needs."""
    existing = cfg.get("workspace")
    if existing:
        return pulumi.Output.from_input(existing)
    import pulumi_azure_native as az

    prefix = cfg.get("prefix") or "mldeploy"
    client = az.authorization.get_client_config_output()
    rg = az.resources.ResourceGroup(f"{prefix}-rg")
    storage = az.storage.StorageAccount(
        f"{prefix}sa",
        resource_group_name=rg.name,
        kind=az.storage.Kind.STORAGE_V2,
        sku=az.storage.SkuArgs(name=az.storage.SkuName.STANDARD_LRS),
        allow_blob_public_access=False,
        minimum_tls_version=az.storage.MinimumTlsVersion.TLS1_2,
    )
    vault = az.keyvault.Vault(
        f"{prefix}-kv",
        resource_group_name=rg.name,
        properties=az.keyvault.VaultPropertiesArgs(
            tenant_id=client.tenant_id,
            sku=az.keyvault.SkuArgs(family=az.keyvault.SkuFamily.A, name=az.keyvault.SkuName.STANDARD),
            enable_rbac_authorization=True,
        ),
    )
    insights = az.applicationinsights.Component(
        f"{prefix}-ai", resource_group_name=rg.name, kind="web", application_type=az.applicationinsights.ApplicationType.WEB
    )
    registry = az.containerregistry.Registry(
        f"{prefix}acr",
        resource_group_name=rg.name,
        sku=az.containerregistry.SkuArgs(name=az.containerregistry.SkuName.BASIC),
        admin_user_enabled=False,
    )
    workspace = az.machinelearningservices.Workspace(
        f"{prefix}-ws",
        resource_group_name=rg.name,
        identity=az.machinelearningservices.ManagedServiceIdentityArgs(type=az.machinelearningservices.ManagedServiceIdentityType.SYSTEM_ASSIGNED),
        sku=az.machinelearningservices.SkuArgs(name="Basic", tier=az.machinelearningservices.SkuTier.BASIC),
        storage_account=storage.id,
        key_vault=vault.id,
        application_insights=insights.id,
        container_registry=registry.id,
    )
    pulumi.export("resource_group", rg.name)
    pulumi.export("container_registry", registry.login_server)
    pulumi.export("workspace_id", workspace.id)
    return workspace.id


target = azure_workspace().apply(lambda ws_id: f"azure:{ws_id}") if target_kind == "azure" else "local"


def default_service_name() -> str:
    """``mldeploy-iris`` locally. On azure the name is the online endpoint's DNS label
    (``<name>.<region>.inference.ml.azure.com``), unique per region across every subscription: a fixed
    default would collide between users and stacks, so it gets a stable suffix from subscription, project
    and stack (azure-ai-ml's rule: 3-32 characters, see mldeploy.backends.azure.naming)."""
    if target_kind != "azure":
        return "mldeploy-iris"
    from mldeploy.backends.azure.naming import default_endpoint_name

    subscription = pulumi.Config("azure-native").get("subscriptionId") or ""
    return default_endpoint_name("mldeploy-iris", subscription, pulumi.get_project(), pulumi.get_stack())


service = ModelService(
    "svc",
    service_name=cfg.get("serviceName") or default_service_name(),
    models={"iris": str(DEMO / "model")},
    inference_config=str(DEMO / "inferenceconfig.json"),
    deployment_config=str(DEMO / "deploymentconfig.json"),
    # On azure the registry builds the base image (the document's `az acr build`); locally, Docker Engine does.
    base_image=BaseImageSpec(context=str(HERE / (cfg.get("baseImageContext") or "../demo/base")), tag="v1", remote_build=True),
    model_tags={"framework": "scikit-learn", "dataset": "iris"},
    target=target,
)

pulumi.export("target", target_kind)
pulumi.export("scoring_uri", service.scoring_uri)
pulumi.export("base_image_ref", service.base_image_ref)
pulumi.export("model_uris", service.model_uris)
