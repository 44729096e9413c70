# The embedded Kubernetes cluster: every setting in one place. Sourced by
# build.sh, up.sh, down.sh and add-node.sh (after scripts/lib.sh).
#
# State: $MLDEPLOY_HOME/kubernetes/
#   bin/kube            the multi-call binary (build.sh)      images/pause.tar   the sandbox image
#   kubeconfig          admin kubeconfig (mode 0600)           pki/               CA, certs, keys (0700)
#   etcd/ containerd/ kubelet/ cni/ podlogs/                   node<N>/           extra nodes (add-node.sh)
#   log/<component>.log  run/<component>.pid (pid + start time: only our own process is ever stopped)
K8S_HOME="$MLDEPLOY_HOME/kubernetes"
KUBE="$K8S_HOME/bin/kube"
K8S_KUBECONFIG="$K8S_HOME/kubeconfig"
KUBE_VERSION="${KUBE_VERSION:-1.35.4}"
K8S_API_PORT="${MLDEPLOY_KUBE_API_PORT:-6443}"       # kube-apiserver, on 127.0.0.1 only
K8S_ETCD_PORT="${MLDEPLOY_KUBE_ETCD_PORT:-2379}"     # etcd client port (peer port: +1), 127.0.0.1 only
K8S_NODE_NAME=mldeploy-1
PAUSE_IMAGE=localhost/pause:3.10.1
K8S_POD_CIDR=10.244.0.0/16                          # node N gets 10.244.(N-1).0/24
K8S_SVC_CIDR=10.96.0.0/16
K8S_NODEPORT_RANGE=30000-32767

# --- Sandbox settings --------------------------------------------------------------------
# What this machine kind (a VM without CAP_SYS_RESOURCE, cgroup v1, one NIC whose egress is
# dropped) forces. Each of these was a failure first; on an ordinary Linux host they are
# harmless, so they are always applied.
#
# 1. No CAP_SYS_RESOURCE: runc cannot set the kubelet's oom_score_adj of -998
#    ("can't get final child's PID from pipe"). containerd's CRI `restrict_oom_score_adj = true`.
# 2. cgroup v1 (hybrid): kubelet `failCgroupV1: false`, `cgroupDriver: cgroupfs`; pods live
#    under <the memory cgroup of the process that ran up.sh>/mldeploy-k8s (K8S_CGROUP_NAME).
# 3. The kubelet refuses a loopback node IP and the kernel has no dummy interface: a port-less
#    bridge (K8S_BRIDGE) carries the node IP; the pod and service ranges are routed onto it,
#    and the iptables chain K8S_EGRESS_CHAIN (first in FORWARD) drops any forwarded pod or
#    node packet headed for another interface: nothing a pod sends leaves the machine.
# 4. Docker sets the FORWARD policy to DROP: the same chain ACCEPTs pod <-> node traffic.
# 5. `ip netns exec` hides /sys/fs/cgroup: extra nodes run under `nsenter --net=`.
# 6. kube-apiserver binds 127.0.0.1; extra nodes reach it (and the registry on
#    127.0.0.1:$MLDEPLOY_REGISTRY_PORT) through socat forwarders on the bridge address.
# 7. The kubelet and kube-proxy change host sysctls (K8S_SYSCTLS) and leave iptables chains:
#    up.sh records the values, down.sh restores them and removes the chains.
# 8. NodePorts answer on 127.0.0.1 (kube-proxy --nodeport-addresses, which sets route_localnet):
#    test traffic never leaves loopback.
K8S_BRIDGE=mldk8s0
K8S_CNI_BRIDGE=mldcni0
K8S_NODE_IP=10.233.0.1
K8S_EGRESS_CHAIN=MLDEPLOY-K8S-EGRESS
K8S_CGROUP_NAME=mldeploy-k8s
K8S_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops net.ipv4.ip_forward net.ipv4.conf.all.route_localnet"
