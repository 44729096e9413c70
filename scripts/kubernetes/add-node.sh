#!/usr/bin/env bash
# Add worker node N (2..200) to the embedded cluster: a network namespace of its own
# (mldeploy-k8s-nodeN, a veth onto the node bridge, IP 10.233.0.N, pod subnet 10.244.(N-1).0/24)
# with its own containerd, kubelet and kube-proxy, started under `nsenter --net=` (sandbox
# setting 5 in env.sh). It reaches the API server and the registry through socat forwarders
# on the bridge address (sandbox setting 6).
#   add-node.sh N            add (or check) node N; prints when it is Ready
#   add-node.sh --remove N   drain nothing, delete the Node object, stop it, remove its namespace
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../lib.sh"
source "$HERE/env.sh"
source "$HERE/lib.sh"
remove=0
[ "${1:-}" = --remove ] && { remove=1; shift; }
N=${1:?usage: add-node.sh [--remove] N}
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] && [ "$N" -le 200 ] || { echo "node number must be 2..200, not $N" >&2; exit 1; }
NAME=mldeploy-$N NS=mldeploy-k8s-node$N IP=10.233.0.$N VETH=mldk8sv$N
SUBNET=10.244.$((N - 1)).0/24 GW=10.244.$((N - 1)).1
D=$K8S_HOME/node$N C=$K8S_HOME/node$N/containerd
IN="nsenter --net=/var/run/netns/$NS"

if [ $remove = 1 ]; then
  set +e
  if k8s_alive "kubelet-node$N"; then  # let its kubelet tear the pods down through CRI (frees their network namespaces)
    kctl delete pods -A --field-selector "spec.nodeName=$NAME" --grace-period=1 --timeout=60s >/dev/null 2>&1
  fi
  kctl delete node "$NAME" --ignore-not-found --wait=false >/dev/null 2>&1
  k8s_stop "kube-proxy-node$N" "kubelet-node$N"
  netns=""
  if [ -S "$C/containerd.sock" ] && k8s_alive "containerd-node$N"; then
    CTR="ctr --address $C/containerd.sock -n k8s.io"
    # the network namespaces of this node's pod sandboxes, from their specs: removed below once nothing runs in them
    netns=$(for c in $($CTR containers ls -q 2>/dev/null); do $CTR containers info --spec "$c" 2>/dev/null; done | grep -o '/run/netns/cni-[0-9a-f-]*' | sort -u)
    for c in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$c" >/dev/null 2>&1; done
    sleep 0.5
    for c in $($CTR containers ls -q 2>/dev/null); do $CTR tasks delete -f "$c" >/dev/null 2>&1; $CTR containers delete "$c" >/dev/null 2>&1; done
  fi
  k8s_stop "containerd-node$N"
  grep -F " $D/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  if [ -s "$D/cgroot" ]; then
    R=$(cat "$D/cgroot")
    for h in /sys/fs/cgroup/*/; do [ -d "$h$R" ] && find "$h$R" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  fi
  for p in $netns; do ip netns pids "${p##*/}" 2>/dev/null | grep -q . || ip netns del "${p##*/}" 2>/dev/null; done
  ip route del "$SUBNET" 2>/dev/null || true
  ip link del "$VETH" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$D"
  if ! ls -d "$K8S_HOME"/node*/ >/dev/null 2>&1; then k8s_stop apiserver-forward registry-forward; fi
  echo "node $NAME removed"
  exit 0
fi

k8s_node_ready "$K8S_NODE_NAME" || { echo "the cluster is not up: run scripts/kubernetes/up.sh" >&2; exit 1; }
mkdir -p "$D"/{cni/net.d,cni/ipam,kubelet,podlogs} "$C"

# --- network: namespace + veth onto the node bridge, routes both ways -------------------------
if ! ip netns list | grep -qw "$NS"; then
  ip netns add "$NS"
  ip link add "$VETH" type veth peer name eth0 netns "$NS"
  ip link set "$VETH" master "$K8S_BRIDGE" up
  $IN ip addr add "$IP/24" dev eth0
  $IN ip link set eth0 up
  $IN ip link set lo up
  $IN ip route add default via "$K8S_NODE_IP"
fi
ip route replace "$SUBNET" via "$IP"
# the API server and the registry listen on 127.0.0.1 only: forward the bridge address to them
k8s_start apiserver-forward socat "TCP-LISTEN:$K8S_API_PORT,bind=$K8S_NODE_IP,fork,reuseaddr" "TCP:127.0.0.1:$K8S_API_PORT"
k8s_start registry-forward socat "TCP-LISTEN:${MLDEPLOY_REGISTRY##*:},bind=$K8S_NODE_IP,fork,reuseaddr" "TCP:$MLDEPLOY_REGISTRY"
(umask 077; sed "s|https://127.0.0.1:$K8S_API_PORT|https://$K8S_NODE_IP:$K8S_API_PORT|" "$K8S_KUBECONFIG" >"$D/kubeconfig")

# --- containerd, kubelet and kube-proxy inside the namespace ---------------------------------
k8s_containerd_conf "$C" "$K8S_NODE_IP:${MLDEPLOY_REGISTRY##*:}" "$D/cni" >"$C/config.toml"
k8s_cni_conf "$D/cni" "$SUBNET" "$GW" >"$D/cni/net.d/10-mldeploy.conflist"
k8s_start "containerd-node$N" $IN containerd --config "$C/config.toml"
CTR="ctr --address $C/containerd.sock -n k8s.io"
k8s_wait "containerd-node$N" 60 $CTR version
$CTR images check "name==$PAUSE_IMAGE" | grep -q "$PAUSE_IMAGE" || $CTR images import "$K8S_HOME/images/pause.tar" >/dev/null
if ! k8s_alive "kubelet-node$N"; then
  [ -s "$D/cgroot" ] || k8s_cgroup_root "$K8S_CGROUP_NAME-node$N" >"$D/cgroot"
  sed -e "s|^cgroupRoot:.*|cgroupRoot: \"$(cat "$D/cgroot")\"|" \
      -e "s|^containerRuntimeEndpoint:.*|containerRuntimeEndpoint: \"unix://$C/containerd.sock\"|" \
      -e "s|^address:.*|address: \"$IP\"|" \
      -e "s|^podLogsDir:.*|podLogsDir: \"$D/podlogs\"|" "$K8S_HOME/kubelet.yaml" >"$D/kubelet.yaml"
fi
k8s_start "kubelet-node$N" $IN "$KUBE" kubelet --config="$D/kubelet.yaml" --kubeconfig="$D/kubeconfig" \
  --root-dir="$D/kubelet" --hostname-override="$NAME" --node-ip="$IP"
k8s_start "kube-proxy-node$N" $IN "$KUBE" kube-proxy --kubeconfig="$D/kubeconfig" --hostname-override="$NAME" \
  --proxy-mode=iptables --cluster-cidr="$K8S_POD_CIDR" --nodeport-addresses="$IP/32" \
  --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 --conntrack-max-per-core=0
k8s_wait "node $NAME Ready" 120 k8s_node_ready "$NAME"
echo "node $NAME Ready ($IP, pods $SUBNET)"
