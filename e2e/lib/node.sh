#!/usr/bin/env bash
# The node tier of e2e/cluster (`e2e/cluster up --node`): one real node beside etcd and
# kube-apiserver. Sourced by e2e/cluster, which owns STATE, log/die, pick_port, alive,
# stop and the component binaries; this file adds:
#
#   - a bridge (PORTCULLIS_NODE_BRIDGE, default pcl0) holding the pod range
#     (PORTCULLIS_POD_CIDR, default 10.244.0.0/24) with the host at its first address
#     (NODE_HOST_IP), and a route for the Service range to it. Nothing routes off the
#     machine: pods get no default route, the mangle chain PORTCULLIS-NODE drops anything
#     forwarded between the bridge and another interface, and nothing is masqueraded to
#     the outside;
#   - containerd (Debian's, with runc and the CNI plugins bridge + host-local + portmap +
#     loopback), all state inside STATE/node;
#   - kube-controller-manager, kube-scheduler, kube-proxy (iptables mode; masqueradeAll
#     only where br_netfilter is missing; NodePorts on the bridge address only) and a
#     kubelet (cgroupfs driver under the cgroup /portcullis, cgroup v1);
#   - CoreDNS (built from its Go module) on the bridge address, port 53, answering for
#     cluster.local from the API server and for nothing else (no forwarding: names
#     outside the cluster do not resolve); the kubelet gives pods that address;
#   - the pause and echo images (e2e/lib/node-images.sh), imported with ctr.
#
# `down` undoes all of it, after a crash too: processes (and every process left in the
# node's cgroups), containerd shims, mounts under STATE, the pods' network namespaces,
# iptables chains (KUBE-*, PORTCULLIS-*), the bridge, cgroups, the files kubelet writes
# outside its root dir, and the sysctls kubelet and the node change (saved at `up`).

NODE_BRIDGE="${PORTCULLIS_NODE_BRIDGE:-pcl0}"
POD_CIDR="${PORTCULLIS_POD_CIDR:-10.244.0.0/24}"
NODE_NAME="${PORTCULLIS_NODE_NAME:-portcullis-node}"
NODE_CGROUP=portcullis
# Only one node can run on a machine (the bridge, the pod range and the cgroup are
# fixed); this file names the state dir that owns them.
NODE_OWNER_FILE=/run/portcullis-node.owner
NODE_CNI_NETWORK=portcullis
NODE_SYSCTLS=(kernel.panic_on_oops kernel.panic vm.overcommit_memory net.ipv4.ip_forward
  net.bridge.bridge-nf-call-iptables)
# Paths kubelet writes whatever its --root-dir; removed at `down` unless they existed.
NODE_HOST_PATHS=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/netns)

# _pod_prefix: "10.244.0" for 10.244.0.0/24 (the node supports /24 pod ranges).
_node_net_vars() {
  [[ $POD_CIDR =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] ||
    die "PORTCULLIS_POD_CIDR must be a /24 ending in .0 (got $POD_CIDR)"
  POD_PREFIX="${BASH_REMATCH[1]}"
  NODE_HOST_IP="$POD_PREFIX.1"
}

node_preflight() {
  local missing=() t
  for t in containerd ctr runc ip iptables iptables-save iptables-restore conntrack objcopy; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  for t in bridge host-local portmap loopback; do
    [[ -x /usr/lib/cni/$t ]] || missing+=("/usr/lib/cni/$t")
  done
  ((${#missing[@]} == 0)) || die "the node needs: ${missing[*]}
  apt-get install containerd runc containernetworking-plugins iptables conntrack binutils"
  [[ $(id -u) == 0 ]] || die "the node tier needs root (bridge, iptables, cgroups, mounts)"
  [[ -d /sys/fs/cgroup/memory ]] ||
    die "no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory (kubelet runs with cgroupfs on cgroup v1 here)"
  if [[ -f $NODE_OWNER_FILE ]]; then
    local owner
    owner="$(<"$NODE_OWNER_FILE")"
    if [[ $owner != "$STATE" ]]; then
      if [[ -d $owner ]] && PORTCULLIS_CLUSTER_DIR="$owner" "$E2E_DIR/cluster" status >/dev/null 2>&1; then
        die "another node is up (state $owner): run PORTCULLIS_CLUSTER_DIR=$owner e2e/cluster down first"
      fi
      # Left by a run that was killed (or a session that ended): nothing of it runs.
      log "a node left by $owner is not running; cleaning it up"
      if [[ -d $owner ]]; then
        PORTCULLIS_CLUSTER_DIR="$owner" "$E2E_DIR/cluster" down || die "could not clean up the node left by $owner"
      else
        NODE=1 KUBELET_BIN=kubelet PROXY_BIN=kube-proxy SCHEDULER_BIN=kube-scheduler \
          CM_BIN=kube-controller-manager COREDNS_BIN=coredns node_down
      fi
    fi
  fi
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && [[ ! -f $NODE_OWNER_FILE ]]; then
    die "interface $NODE_BRIDGE exists and is not ours (set PORTCULLIS_NODE_BRIDGE to another name)"
  fi
}

# === networking ===

node_net_up() {
  local k v
  echo "$STATE" >"$NODE_OWNER_FILE"
  # Save the sysctls once (a second `up` after a crash must not save changed values).
  if [[ ! -s /run/portcullis-node.sysctl ]]; then
    for k in "${NODE_SYSCTLS[@]}"; do
      v="$(sysctl -n "$k" 2>/dev/null)" && printf '%s=%s\n' "$k" "$v"
    done >/run/portcullis-node.sysctl
  fi
  for k in "${NODE_HOST_PATHS[@]}"; do
    [[ -e $k ]] && printf '%s\n' "$k"
  done >"$STATE/node/host-paths.existed"
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_HOST_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Host -> ClusterIP: the connection needs a route before kube-proxy's DNAT applies.
  ip route add "$SERVICE_CIDR" dev "$NODE_BRIDGE" src "$NODE_HOST_IP"
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  # Nothing crosses between the bridge and any other interface. In the mangle table,
  # which runs before kube-proxy's filter rules (KUBE-FORWARD accepts marked packets):
  # an EndpointSlice naming an outside address must not turn a pod into a router.
  iptables -t mangle -N PORTCULLIS-NODE
  iptables -t mangle -A PORTCULLIS-NODE -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j RETURN
  iptables -t mangle -A PORTCULLIS-NODE -i "$NODE_BRIDGE" -j DROP
  iptables -t mangle -A PORTCULLIS-NODE -o "$NODE_BRIDGE" -j DROP
  iptables -t mangle -I FORWARD 1 -j PORTCULLIS-NODE
  node_cgroups_up
}

# _ipt_sweep CMD: removes every rule jumping to a KUBE-* or PORTCULLIS-* chain from the
# built-in chains, then those chains, in every table.
_ipt_sweep() {
  local cmd="$1" t rule chains c
  command -v "$cmd" >/dev/null || return 0
  for t in filter nat mangle raw; do
    "$cmd-save" -t "$t" >/dev/null 2>&1 || continue
    while read -r rule; do
      eval "$cmd -w -t $t $rule" 2>/dev/null || true
    done < <("$cmd-save" -t "$t" |
      grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE-|PORTCULLIS-)' |
      sed 's/^-A/-D/')
    chains="$("$cmd-save" -t "$t" | sed -n 's/^:\(\(KUBE\|PORTCULLIS\)-[^ ]*\) .*/\1/p')"
    for c in $chains; do "$cmd" -w -t "$t" -F "$c" 2>/dev/null || true; done
    for c in $chains; do "$cmd" -w -t "$t" -X "$c" 2>/dev/null || true; done
  done
}

node_net_down() {
  local ns line k v
  _node_net_vars
  # The pods' network namespaces: containerd names them cni-*; ours have an address in
  # the pod range.
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    if ip -n "${ns##*/}" -4 -o addr show 2>/dev/null | grep -q " inet $POD_PREFIX\."; then
      umount "$ns" 2>/dev/null || true
      ip netns delete "${ns##*/}" 2>/dev/null || rm -f "$ns"
    fi
  done
  _ipt_sweep iptables
  _ipt_sweep ip6tables
  if command -v nft >/dev/null; then
    nft delete table ip kube-proxy 2>/dev/null || true
    nft delete table ip6 kube-proxy 2>/dev/null || true
  fi
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link delete "$NODE_BRIDGE"
    log "removed bridge $NODE_BRIDGE"
  fi
  if [[ -s /run/portcullis-node.sysctl ]]; then
    while IFS= read -r line; do
      k="${line%%=*}" v="${line#*=}"
      sysctl -qw "$k=$v" 2>/dev/null || log "could not restore $k=$v"
    done </run/portcullis-node.sysctl
    log "restored sysctls: $(tr '\n' ' ' </run/portcullis-node.sysctl)"
    rm -f /run/portcullis-node.sysctl
  fi
}

# === processes, cgroups, mounts ===

# _node_cgroup_pids: every pid in the node's cgroups (pods' containers), any hierarchy.
_node_cgroup_pids() {
  local d
  for d in /sys/fs/cgroup/*/"$NODE_CGROUP"; do
    [[ -d $d ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
  return 0
}

# node_cgroups_up: the kubelet's cgroup root in every v1 hierarchy (it must exist).
node_cgroups_up() {
  local h f
  for h in /sys/fs/cgroup/*/; do
    h="${h%/}"
    [[ -f $h/cgroup.procs && ${h##*/} != unified ]] || continue
    mkdir -p "$h/$NODE_CGROUP"
    # A new cpuset cgroup starts with no CPUs or memory nodes: take the parent's.
    for f in cpuset.cpus cpuset.mems; do
      [[ -f $h/$f ]] && cat "$h/$f" >"$h/$NODE_CGROUP/$f"
    done
  done
}

node_processes_down() {
  local i pids pid
  # Containerd's shims name our socket on their command line.
  for pid in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $STATE/node/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 50; i++)); do
    pids="$(_node_cgroup_pids)"
    [[ -z $pids ]] && break
    # shellcheck disable=SC2086 # one pid a word
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  [[ -z "$(_node_cgroup_pids)" ]] || log "processes left in the node's cgroups: $(_node_cgroup_pids | tr '\n' ' ')"
  # Deepest first.
  local d
  for d in /sys/fs/cgroup/*/"$NODE_CGROUP"; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [[ -d $d ]] && log "could not remove every cgroup under $d"
  done
  # Mounts under the state dir (pod volumes, container rootfs, sandbox shm).
  _node_umount_under "$STATE"
}

# _node_umount_under DIR: unmounts everything mounted below DIR, deepest first.
_node_umount_under() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(awk -v p="$1/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
}

node_files_down() {
  local p
  for p in "${NODE_HOST_PATHS[@]}"; do
    if ! grep -qxF "$p" "$STATE/node/host-paths.existed" 2>/dev/null; then
      # The node made it, so what is mounted inside is the node's too: network
      # namespaces a killed run left bound under /run/netns, say, which rm cannot remove.
      _node_umount_under "$p"
      rm -rf "$p"
    fi
  done
  rm -rf "/var/lib/cni/networks/$NODE_CNI_NETWORK" /var/log/pods/*_"$NODE_NAME"* 2>/dev/null || true
  rm -f /var/lib/cni/results/"$NODE_CNI_NETWORK"-* 2>/dev/null || true
  rm -f "$NODE_OWNER_FILE"
}

# node_down: everything the node made; safe when nothing or only part of it is there.
node_down() {
  stop "$STATE/kubelet.pid" "$KUBELET_BIN" kubelet
  stop "$STATE/kube-proxy.pid" "$PROXY_BIN" kube-proxy
  stop "$STATE/coredns.pid" "${COREDNS_BIN:-coredns}" coredns
  stop "$STATE/kube-scheduler.pid" "$SCHEDULER_BIN" kube-scheduler
  stop "$STATE/kube-controller-manager.pid" "$CM_BIN" kube-controller-manager
  node_processes_down
  stop "$STATE/containerd.pid" "$(command -v containerd || echo containerd)" containerd
  node_processes_down
  node_net_down
  node_files_down
}

# === configuration ===

node_write_config() {
  local n="$STATE/node"
  mkdir -p "$n/cni" "$n/kubelet" "$n/volume-plugins" "$n/cni-ipam"
  # The CA the kubelet trusts for client certificates, and the API server's client cert
  # (for logs, exec, port-forward).
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=portcullis-node-ca" \
    -keyout "$n/kubelet-ca.key" -out "$n/kubelet-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$n/apiserver-kubelet.key" -out "$n/apiserver-kubelet.csr" 2>/dev/null
  openssl x509 -req -in "$n/apiserver-kubelet.csr" -CA "$n/kubelet-ca.crt" -CAkey "$n/kubelet-ca.key" \
    -CAcreateserial -days 2 -out "$n/apiserver-kubelet.crt" 2>/dev/null
  cat >"$n/containerd.toml" <<EOF
# Written by e2e/cluster up --node.
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$n/containerd.sock"
[ttrpc]
  address = "$n/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: the sandbox's negative OOM score would fail otherwise.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
EOF
  # No default route for pods: only the pod range (on-link) and the Service range.
  cat >"$n/cni/10-portcullis.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NODE_CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$n/cni-ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "$POD_PREFIX.10", "gateway": "$NODE_HOST_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false},
    {"type": "loopback"}
  ]
}
EOF
  local who
  for who in kubelet kube-controller-manager kube-scheduler kube-proxy coredns; do
    local tokvar="TOKEN_${who//-/_}"
    cat >"$n/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: portcullis
  cluster: {server: "https://$NODE_HOST_IP:$API_PORT", certificate-authority: "$STATE/ca.crt"}
users:
- name: $who
  user: {token: "${!tokvar}"}
contexts:
- name: portcullis
  context: {cluster: portcullis, user: $who}
current-context: portcullis
EOF
    chmod 600 "$n/$who.kubeconfig"
  done
  # Pods with dnsPolicy Default get no name servers (none are reachable from here).
  : >"$n/resolv.conf"
  local dns="clusterDNS: [$NODE_HOST_IP]"
  cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_HOST_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$n/kubelet-ca.crt"}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$n/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP
failCgroupV1: false
failSwapOn: false
volumePluginDir: $n/volume-plugins
resolvConf: $n/resolv.conf
$dns
clusterDomain: cluster.local
serializeImagePulls: false
# The images are imported, never pulled: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
maxPods: 60
nodeStatusUpdateFrequency: 4s
shutdownGracePeriod: 0s
EOF
  # Pod -> ClusterIP -> another pod on the same bridge: the reply crosses the bridge
  # straight back, so it must pass conntrack to be un-DNATed. br_netfilter (built into
  # this kernel) makes bridged packets do that, and the backend then sees the caller's
  # own address; without it, every Service connection needs SNAT (masqueradeAll). A pod
  # reaching itself through its Service (hairpin) is masqueraded by kube-proxy either way.
  local masquerade_all=true
  [[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" == 1 ]] && masquerade_all=false
  cat >"$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$n/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
iptables:
  masqueradeAll: $masquerade_all
  syncPeriod: 30s
  minSyncPeriod: 0s
# NodePorts on the bridge address only: nothing listens on the machine's other
# interfaces, and 127.0.0.1 would need route_localnet.
nodePortAddresses: ["$NODE_HOST_IP/32"]
# Leave the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
EOF

  cat >"$n/Corefile" <<EOF
.:53 {
    bind $NODE_HOST_IP
    errors
    health 127.0.0.1:$DNS_HEALTH_PORT
    ready 127.0.0.1:$DNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $n/coredns.kubeconfig
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
    loadbalance
}
EOF
}

# What CoreDNS reads (its upstream ClusterRole), for the user the coredns token names.
node_coredns_rbac() {
  node_kubectl apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
EOF
}

# === processes ===

# _node_start NAME BIN LOG ARGS...: starts BIN in its own session, records its pid.
_node_start() {
  local name="$1" bin="$2"
  shift 2
  setsid "$bin" "$@" </dev/null >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

# _node_wait WHAT SECONDS PIDFILE LOG CMD...: polls CMD until it succeeds.
_node_wait() {
  local what="$1" secs="$2" pidfile="$3" logf="$4" i
  shift 4
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    running "$pidfile" || { tail_log "$logf"; die "$what exited"; }
    sleep 0.2
  done
  tail_log "$logf"
  die "$what not ready after ${secs}s"
}

node_start_containerd() {
  local n="$STATE/node" f
  log "starting containerd (state in $n/containerd)"
  _node_start containerd "$(command -v containerd)" --config "$n/containerd.toml" --log-level warn
  _node_wait containerd 60 "$STATE/containerd.pid" "$STATE/containerd.log" \
    ctr -a "$n/containerd.sock" version
  for f in $(images_base "$PORTCULLIS_CACHE/images/archives"); do
    node_import "$f"
  done
}

# node_import ARCHIVE: imports an OCI archive for the CRI (namespace k8s.io).
node_import() {
  ctr -a "$STATE/node/containerd.sock" -n k8s.io images import "$1" >/dev/null ||
    die "importing $1 failed"
  log "imported $(basename "$1")"
}

node_kubectl() { KUBECONFIG="$STATE/kubeconfig" "$KUBECTL_BIN" "$@"; }

node_start_components() {
  local n="$STATE/node"
  log "starting kube-controller-manager"
  _node_start kube-controller-manager "$CM_BIN" \
    --kubeconfig "$n/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$n/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$n/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$CM_PORT" \
    --leader-elect=false \
    --use-service-account-credentials \
    --service-account-private-key-file "$STATE/sa.key" \
    --root-ca-file "$STATE/ca.crt" \
    --cluster-name portcullis \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' \
    --node-monitor-grace-period 20s \
    --profiling=false --v=1
  log "starting kube-scheduler"
  _node_start kube-scheduler "$SCHEDULER_BIN" \
    --kubeconfig "$n/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$n/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$n/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
    --leader-elect=false --profiling=false --v=1
  log "starting CoreDNS on $NODE_HOST_IP:53"
  node_coredns_rbac || die "applying CoreDNS's RBAC failed"
  _node_start coredns "$COREDNS_BIN" -conf "$n/Corefile"
  log "starting kube-proxy (iptables mode)"
  _node_start kube-proxy "$PROXY_BIN" --config "$n/kube-proxy.yaml" --v=1
  log "starting kubelet ($NODE_NAME, $NODE_HOST_IP)"
  _node_start kubelet "$KUBELET_BIN" \
    --config "$n/kubelet.yaml" \
    --kubeconfig "$n/kubelet.kubeconfig" \
    --root-dir "$n/kubelet" \
    --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_HOST_IP" \
    --v=1
  _node_wait "node $NODE_NAME Ready" 120 "$STATE/kubelet.pid" "$STATE/kubelet.log" \
    node_kubectl wait --for condition=Ready --timeout 1s "node/$NODE_NAME"
  _node_wait kube-proxy 60 "$STATE/kube-proxy.pid" "$STATE/kube-proxy.log" \
    curl -fsS --max-time 2 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  _node_wait CoreDNS 60 "$STATE/coredns.pid" "$STATE/coredns.log" \
    curl -fsS --max-time 2 "http://127.0.0.1:$DNS_READY_PORT/ready"
  # The ServiceAccount controller makes "default" in each namespace; pods need it.
  _node_wait "the default ServiceAccount" 60 "$STATE/kube-controller-manager.pid" \
    "$STATE/kube-controller-manager.log" node_kubectl -n default get serviceaccount default
}
