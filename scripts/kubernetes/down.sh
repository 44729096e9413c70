#!/usr/bin/env bash
# Stop the embedded cluster (make cluster-down): its processes, its pods' containers and
# network namespaces, the bridge, routes and iptables chains it added, the pod cgroups;
# and restore the sysctls the kubelet and kube-proxy changed. Deployments, certificates and
# pulled images stay in $MLDEPLOY_HOME/kubernetes, so up.sh brings the same cluster back
# (its pods restart). PURGE=1 also deletes that state (keeping the built binary).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../lib.sh"
source "$HERE/env.sh"
[ -d "$K8S_HOME/run" ] || { echo "no embedded cluster state in $K8S_HOME"; exit 0; }
source "$HERE/lib.sh"
S=$K8S_HOME
t0=$SECONDS

# 1. extra nodes (add-node.sh): their Node objects go, so nothing is scheduled onto them later.
for d in "$S"/node*/; do
  [ -d "$d" ] || continue
  "$HERE/add-node.sh" --remove "$(basename "$d" | sed 's/^node//')" || true
done

# 2. node components, then every container our containerd runs (shims exit with them).
k8s_stop kube-proxy kubelet kube-scheduler kube-controller-manager
sock="$S/containerd/containerd.sock"
if [ -S "$sock" ] && k8s_alive containerd; then
  CTR="ctr --address $sock -n k8s.io"
  for c in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$c" >/dev/null 2>&1; done
  sleep 0.5
  for c in $($CTR containers ls -q 2>/dev/null); do
    $CTR tasks delete -f "$c" >/dev/null 2>&1; $CTR containers delete "$c" >/dev/null 2>&1
  done
fi
k8s_stop containerd kube-apiserver apiserver-forward registry-forward
k8s_stop etcd

# 3. kube-proxy's rules, the kubelet's chains, our egress guard; the bridges and routes.
"$KUBE" kube-proxy --cleanup >/dev/null 2>&1
iptables -D FORWARD -j "$K8S_EGRESS_CHAIN" 2>/dev/null
iptables -F "$K8S_EGRESS_CHAIN" 2>/dev/null; iptables -X "$K8S_EGRESS_CHAIN" 2>/dev/null
for ipt in iptables ip6tables; do
  for t in filter nat mangle; do
    $ipt -t $t -S 2>/dev/null | grep -E '^-A .* -j KUBE-(FIREWALL|KUBELET-CANARY|IPTABLES-HINT|PROXY-CANARY)$' | sed 's/^-A/-D/' |
      while read -r r; do $ipt -t $t $r 2>/dev/null; done
    for ch in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
      $ipt -t $t -F $ch 2>/dev/null; $ipt -t $t -X $ch 2>/dev/null
    done
  done
done
ip route del "$K8S_SVC_CIDR" dev "$K8S_BRIDGE" 2>/dev/null
ip route del "$K8S_POD_CIDR" dev "$K8S_BRIDGE" 2>/dev/null
ip link del "$K8S_CNI_BRIDGE" 2>/dev/null
ip link del "$K8S_BRIDGE" 2>/dev/null
# our pods' network namespaces (containerd names them cni-*) that no process holds any more
for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
  ip netns pids "$ns" 2>/dev/null | grep -q . || ip netns del "$ns"
done
rm -rf "$S/cni/ipam"  # every pod is gone: its addresses are free

# 4. mounts under the state directory (overlay root filesystems, kubelet volumes), deepest first.
grep -F " $S/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done

# 5. pod cgroups, deepest first.
for R in $(cat "$S/run/cgroot" 2>/dev/null); do
  for h in /sys/fs/cgroup/*/; do [ -d "$h$R" ] && find "$h$R" -depth -type d -exec rmdir {} \; 2>/dev/null; done
done
rm -f "$S/run/cgroot"

# 6. sysctls, as they were before up.sh.
if [ -f "$S/run/sysctl.saved" ]; then
  while IFS= read -r kv; do sysctl -qw "$kv" >/dev/null; done <"$S/run/sysctl.saved"
  rm -f "$S/run/sysctl.saved"
fi
if [ "${PURGE:-0}" = 1 ]; then
  find "$S" -mindepth 1 -maxdepth 1 ! -name bin ! -name images -exec rm -rf {} +
  echo "cluster down and its state removed ($((SECONDS - t0))s)"
else
  echo "cluster down ($((SECONDS - t0))s); state kept in $S (PURGE=1 removes it)"
fi
