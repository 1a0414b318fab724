# Shared by tests/tls/*.sh, scripts/demo.sh and bench/tls_bench.sh (sourced, not run):
# loopback ports, a throwaway CA with certificates, and nginx started the way a distribution runs
# it (master as root, workers as www-data with an 8 MiB RLIMIT_MEMLOCK) under a chosen openssl.cnf.

# For the test scripts: tls_test_init MEMGUARD_SO sets $conf (the shipped conf/memguard.cnf),
# OPENSSL_MODULES (the module's directory), $work (a fresh directory, removed by the caller's
# trap) and the ok/bad counters that tls_test_summary reports.
tls_test_init() {
  conf=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../conf" && pwd)/memguard.cnf
  export OPENSSL_MODULES
  OPENSSL_MODULES=$(dirname "$1")
  work=$(mktemp -d)
  pass=0 fail=0
}
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
tls_test_summary() { # name
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}

# A free loopback TCP port (nothing answers on it), below the kernel's ephemeral range so that no
# outgoing connection holds it.
tls_free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 100); do
    p=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# Wait until something listens on the port (10 s at most).
tls_wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# plain openssl: no provider configuration at all.
tls_plain() { OPENSSL_CONF=/dev/null openssl "$@"; }

# tls_make_ca DIR: a CA (P-256) in DIR/ca.key, DIR/ca.crt.
tls_make_ca() {
  tls_plain req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/ca.key" \
    -out "$1/ca.crt" -subj "/CN=memguard test CA" -days 2 2>/dev/null
}

# tls_make_key DIR NAME ALG [genpkey options]: DIR/NAME.key (PKCS#8 PEM) and DIR/NAME.crt for
# localhost, issued by the CA. ALG as for genpkey (RSA, RSA-PSS, EC, ED25519, ED448).
tls_make_key() {
  local dir=$1 name=$2 alg=$3
  shift 3
  tls_plain genpkey -algorithm "$alg" "$@" -out "$dir/$name.key" 2>/dev/null &&
    tls_plain req -new -key "$dir/$name.key" -subj "/CN=localhost" -out "$dir/$name.csr" 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > "$dir/$name.ext" &&
    tls_plain x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

# tls_nginx_start DIR PORT KEY CRT OPENSSL_CONF [extra server directives]
# Writes DIR/nginx.conf and starts nginx (master + 2 workers) in the foreground of a background
# job, so the caller owns it; the master's pid is in DIR/nginx.pid. OPENSSL_MODULES is passed
# through (the tests point it at the build tree). Returns once the port answers.
tls_nginx_start() {
  local dir=$1 port=$2 key=$3 crt=$4 conf=$5 extra=${6:-}
  local user=""
  [ "$(id -u)" = 0 ] && user="user www-data;"
  mkdir -p "$dir/tmp" && chmod 755 "$dir" && chmod 777 "$dir/tmp"
  cat > "$dir/nginx.conf" <<NGINX
$user
worker_processes 2;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $crt;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers HIGH:kRSA:!aNULL;
    $extra
    location / { return 200 "hello from nginx over \$ssl_protocol, client \$ssl_client_verify\n"; }
  }
}
NGINX
  rm -f "$dir/nginx.pid"
  # Workers run as www-data with the distribution default RLIMIT_MEMLOCK (8 MiB) and no CAP_IPC_LOCK.
  (ulimit -l 8192 && OPENSSL_CONF=$conf exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log") \
    > "$dir/nginx.out" 2>&1 &
  tls_wait_port "$port" || { cat "$dir/nginx.out" "$dir/error.log" >&2 2>/dev/null; return 1; }
  for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
}

# The master's pid, then its workers'.
tls_nginx_pids() {
  local master
  master=$(cat "$1/nginx.pid")
  echo "$master"
  pgrep -P "$master" | sort -n
}

# Wait until the master has exactly N workers, none of them among the pids given (10 s at most).
tls_nginx_wait_workers() {
  local dir=$1 n=$2 excluded=" ${3:-} " pids p stale
  for _ in $(seq 100); do
    pids=$(pgrep -P "$(cat "$dir/nginx.pid")" || true)
    stale=0
    for p in $pids; do [[ $excluded == *" $p "* ]] && stale=1; done
    [ "$stale" = 0 ] && [ "$(echo $pids | wc -w)" -eq "$n" ] && return 0
    sleep 0.1
  done
  return 1
}

# tls_nginx_serve DIR KEY CRT OPENSSL_CONF [extra]: tls_nginx_start on a free port, trying another
# port if a race took the first; sets $port.
tls_nginx_serve() {
  local dir=$1
  shift
  for _ in 1 2 3; do
    port=$(tls_free_port) || return 1
    tls_nginx_start "$dir" "$port" "$@" 2>/dev/null && return 0
    tls_nginx_stop "$dir"
  done
  return 1
}

tls_nginx_stop() {
  local dir=$1 master
  [ -s "$dir/nginx.pid" ] || return 0
  master=$(cat "$dir/nginx.pid")
  kill -QUIT "$master" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$master" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$master" 2>/dev/null
  return 0
}
