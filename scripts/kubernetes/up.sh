#!/usr/bin/env bash
# Start (or check) mldeploy's embedded one-node Kubernetes cluster, as root:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler (the `kube` binary from
# build.sh), Debian's containerd + runc + CNI plugins, the kubelet and kube-proxy.
#
# Idempotent: components already running are left alone, so a warm run takes a second or
# two; one that died is restarted. State in $MLDEPLOY_HOME/kubernetes (see env.sh);
# down.sh stops it. The admin kubeconfig: $MLDEPLOY_HOME/kubernetes/kubeconfig.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../lib.sh"
source "$HERE/env.sh"
source "$HERE/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "the embedded cluster runs as root (kubelet, containerd, iptables); run as root or set MLDEPLOY_KUBERNETES=0 and point mldeploy at your own cluster" >&2; exit 1; }
[ -x "$KUBE" ] || { echo "$KUBE is missing: run scripts/kubernetes/build.sh first" >&2; exit 1; }
S=$K8S_HOME P=$K8S_HOME/pki C=$K8S_HOME/containerd
mkdir -p "$S"/{etcd,kubelet,podlogs,cni/net.d,cni/ipam} "$C"
chmod 0700 "$S/etcd"

components=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)
all_alive() { for c in "${components[@]}"; do k8s_alive "$c" || return 1; done; }
if all_alive && k8s_node_ready "$K8S_NODE_NAME"; then
  echo "cluster is up: node $K8S_NODE_NAME Ready, Kubernetes $("$KUBE" kubectl version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -1); KUBECONFIG=$K8S_KUBECONFIG"
  exit 0
fi

# --- host network (sandbox settings 3, 4): a port-less bridge holds the node IP ---------------
if ! ip link show "$K8S_BRIDGE" >/dev/null 2>&1; then
  ip link add "$K8S_BRIDGE" type bridge
  ip addr add "$K8S_NODE_IP/24" dev "$K8S_BRIDGE"
  ip link set "$K8S_BRIDGE" up
fi
ip route replace "$K8S_SVC_CIDR" dev "$K8S_BRIDGE"
ip route replace "$K8S_POD_CIDR" dev "$K8S_BRIDGE"
iptables -N "$K8S_EGRESS_CHAIN" 2>/dev/null || true
iptables -F "$K8S_EGRESS_CHAIN"
for i in "$K8S_CNI_BRIDGE" "$K8S_BRIDGE"; do
  for o in "$K8S_CNI_BRIDGE" "$K8S_BRIDGE"; do iptables -A "$K8S_EGRESS_CHAIN" -i "$i" -o "$o" -j ACCEPT; done
  iptables -A "$K8S_EGRESS_CHAIN" -i "$i" -j DROP
done
iptables -C FORWARD -j "$K8S_EGRESS_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -j "$K8S_EGRESS_CHAIN"

# --- sysctls the kubelet and kube-proxy change (sandbox setting 7): recorded once ---------------
[ -f "$S/run/sysctl.saved" ] || for k in $K8S_SYSCTLS; do echo "$k=$(sysctl -n "$k")"; done >"$S/run/sysctl.saved"

# --- PKI and kubeconfig ---------------------------------------------------------------------
if [ ! -f "$P/admin.crt" ]; then
  mkdir -p "$P" && chmod 0700 "$P"
  (
    cd "$P"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=mldeploy-kubernetes-ca" 2>/dev/null
    sign() { # name subject [subjectAltName]
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      if [ -n "${3:-}" ]; then printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
      else printf 'extendedKeyUsage=clientAuth\n' >"$1.ext"; fi
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$K8S_NODE_IP"
    sign admin "/O=system:masters/CN=mldeploy-admin"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  echo "  made the cluster CA and certificates in $P"
fi
(umask 077; cat >"$K8S_KUBECONFIG.new" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mldeploy
  cluster: {server: "https://127.0.0.1:$K8S_API_PORT", certificate-authority: "$P/ca.crt"}
users:
- name: mldeploy-admin
  user: {client-certificate: "$P/admin.crt", client-key: "$P/admin.key"}
contexts:
- name: mldeploy
  context: {cluster: mldeploy, user: mldeploy-admin}
current-context: mldeploy
KC
)
mv "$K8S_KUBECONFIG.new" "$K8S_KUBECONFIG"
KC=$K8S_KUBECONFIG

# --- control plane --------------------------------------------------------------------------
k8s_start etcd "$KUBE" etcd --name mldeploy --data-dir "$S/etcd" \
  --listen-client-urls "http://127.0.0.1:$K8S_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$K8S_ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((K8S_ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((K8S_ETCD_PORT + 1))" \
  --initial-cluster "mldeploy=http://127.0.0.1:$((K8S_ETCD_PORT + 1))" --unsafe-no-fsync --log-level warn
k8s_wait etcd 60 curl -sf "http://127.0.0.1:$K8S_ETCD_PORT/health"
k8s_start kube-apiserver "$KUBE" kube-apiserver \
  --etcd-servers="http://127.0.0.1:$K8S_ETCD_PORT" --bind-address=127.0.0.1 --secure-port="$K8S_API_PORT" \
  --advertise-address="$K8S_NODE_IP" --endpoint-reconciler-type=none \
  --service-cluster-ip-range="$K8S_SVC_CIDR" --service-node-port-range="$K8S_NODEPORT_RANGE" \
  --client-ca-file="$P/ca.crt" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --kubelet-client-certificate="$P/admin.crt" --kubelet-client-key="$P/admin.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=false \
  --profiling=false
k8s_wait kube-apiserver 120 kctl get --raw /readyz
k8s_start kube-controller-manager "$KUBE" kube-controller-manager --kubeconfig="$KC" \
  --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --service-cluster-ip-range="$K8S_SVC_CIDR" --profiling=false
k8s_start kube-scheduler "$KUBE" kube-scheduler --kubeconfig="$KC" \
  --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false

# --- node: containerd, kubelet, kube-proxy --------------------------------------------------
k8s_containerd_conf "$C" "$MLDEPLOY_REGISTRY" "$S/cni" >"$C/config.toml"
k8s_cni_conf "$S/cni" 10.244.0.0/24 10.244.0.1 >"$S/cni/net.d/10-mldeploy.conflist"
if ! k8s_alive containerd && ! mountpoint -q /run/netns; then
  # Pods' network namespaces are bind mounts in /run/netns. Make it a shared mount point now, before the
  # first pod: `ip netns add` (add-node.sh) would otherwise bind it over itself later and cover the mounts
  # of running pods, whose namespaces then can never be removed ("unlinkat ...: device or resource busy").
  mkdir -p /run/netns
  mount --bind /run/netns /run/netns && mount --make-shared /run/netns
fi
k8s_start containerd containerd --config "$C/config.toml"
CTR="ctr --address $C/containerd.sock -n k8s.io"
k8s_wait containerd 60 $CTR version
$CTR images check "name==$PAUSE_IMAGE" | grep -q "$PAUSE_IMAGE" || $CTR images import "$K8S_HOME/images/pause.tar" >/dev/null

if ! k8s_alive kubelet; then
  if [ -s "$S/run/cgroot" ] && [ -d "/sys/fs/cgroup/memory$(cat "$S/run/cgroot")" ]; then CGROOT=$(cat "$S/run/cgroot")
  else CGROOT=$(k8s_cgroup_root "$K8S_CGROUP_NAME"); echo "$CGROOT" >"$S/run/cgroot"; fi
  cat >"$S/kubelet.yaml" <<KL
# Written by mldeploy (scripts/kubernetes/up.sh); sandbox setting 2 in env.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: "$CGROOT"
containerRuntimeEndpoint: "unix://$C/containerd.sock"
address: "$K8S_NODE_IP"
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$P/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
failSwapOn: false
podLogsDir: "$S/podlogs"
serializeImagePulls: false
evictionHard: {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"}
KL
fi
k8s_start kubelet "$KUBE" kubelet --config="$S/kubelet.yaml" --kubeconfig="$KC" \
  --root-dir="$S/kubelet" --hostname-override="$K8S_NODE_NAME" --node-ip="$K8S_NODE_IP"
k8s_start kube-proxy "$KUBE" kube-proxy --kubeconfig="$KC" --hostname-override="$K8S_NODE_NAME" \
  --proxy-mode=iptables --cluster-cidr="$K8S_POD_CIDR" --nodeport-addresses="127.0.0.1/32,$K8S_NODE_IP/32" \
  --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 --conntrack-max-per-core=0
k8s_wait "node $K8S_NODE_NAME Ready" 180 k8s_node_ready "$K8S_NODE_NAME"
k8s_wait "the default service account" 60 kctl get serviceaccount default
echo "cluster is up: node $K8S_NODE_NAME Ready; KUBECONFIG=$KC"
