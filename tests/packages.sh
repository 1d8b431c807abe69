# tests/packages.sh — sourced by tests/run and ./demo: installs the Debian packages Sluice's
# build, namespace tests and demo need, when missing.
#   clang, linux-libc-dev   the XDP program is C, compiled by clang against the kernel's UAPI headers
#   iproute2, ethtool       namespaces, veth, bridges, offload settings
#   nginx-light             the backends' HTTP servers
#   curl, iputils-ping      the clients
#   util-linux              setpriv (the unprivileged-run test)
#   systemd                 systemd-analyze verify (the deploy/systemd units' test; no service started)
#   openssl                 s_client: a real TLS 1.0/1.1/1.2 client against the L7 TLS config (gateway/l7/tests/tls.rs)
#   nghttp2-client          nghttp and h2load: real HTTP/2 clients (gateway/l7/tests/h2_interop.rs)
#   nghttp2-server          nghttpd: a real HTTP/2 server for the client role (the same test)
#   python3-grpcio          a real gRPC client and server (tests/grpc/, run by /usr/bin/python3) through the gateway
#   testssl.sh              the TLS scan of the HTTPS listener (tests/tests/l7_hostile.rs)
#   bird2                   BIRD, the BGP speaker of a gateway node and of the router (tests/tests/bgp.rs)
#   keepalived              VRRP on the gateway nodes' back side: SNAT addresses and the backends' router move
#                           to a live node (tests/tests/ecmp.rs, benches/run ecmp, the demo's two nodes)
sluice_debian_packages=(clang linux-libc-dev iproute2 ethtool nginx-light curl iputils-ping util-linux systemd openssl
  nghttp2-client nghttp2-server python3-grpcio testssl.sh bird2 keepalived)

sluice_install_packages() {
  local missing=() p
  for p in "${sluice_debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    return 1
  fi
  echo "== apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx-light's package starts a system nginx on port 80; the sandboxes run their own.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || pkill -x nginx || true
  fi
  # So does bird2 with a BIRD of the system's; the tests run their own, one per namespace.
  if [[ " ${missing[*]} " == *" bird2 "* ]]; then
    systemctl disable --now bird >/dev/null 2>&1 || service bird stop >/dev/null 2>&1 || pkill -x bird || true
  fi
  # And keepalived, whose system instance would hold VRRP addresses of its own.
  if [[ " ${missing[*]} " == *" keepalived "* ]]; then
    systemctl disable --now keepalived >/dev/null 2>&1 || service keepalived stop >/dev/null 2>&1 || true
  fi
}
