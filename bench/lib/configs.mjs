// Config files for the nginx backends and the nginx and HAProxy proxies. Every path points
// into the benchmark's temp dir, so nothing touches the system's own nginx or HAProxy.

/** `user root;` when running as root, so workers can use the temp dir (mode 0700). */
function userLine() {
  return process.getuid?.() === 0 ? "user root;" : "";
}

function nginxCommon(dir, name) {
  return `
${userLine()}
worker_processes 1;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}.error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; multi_accept on; }
`;
}

function nginxHttpCommon(dir, name) {
  return `
  access_log off;
  client_body_temp_path ${dir}/${name}-tmp/body;
  proxy_temp_path ${dir}/${name}-tmp/proxy;
  fastcgi_temp_path ${dir}/${name}-tmp/fastcgi;
  uwsgi_temp_path ${dir}/${name}-tmp/uwsgi;
  scgi_temp_path ${dir}/${name}-tmp/scgi;
  default_type text/plain;
  # Connections live for the whole run, as with a long-lived client pool.
  keepalive_requests 10000000;
  keepalive_timeout 120s;
`;
}

/** The start of an nginx config up to and inside `http {`, for configs of other benchmarks. */
export function nginxHead(dir, name) {
  return `${nginxCommon(dir, name)}http {${nginxHttpCommon(dir, name)}`;
}

/**
 * The two fast backends, one nginx process. Each logs a 2-byte line ("1\\n") per request into
 * its own file, buffered, so the split can be counted from file sizes at almost no cost, and
 * names itself in an `X-Backend: a|b` response header.
 */
export function backendsNginxConf(dir, ports, logs) {
  const servers = ports
    .map(
      (port, i) => `
  server {
    listen 127.0.0.1:${port} backlog=4096;
    access_log ${logs[i]} one buffer=64k flush=100ms;
    # Names the backend, so that sticky assignment can be checked request by request.
    add_header X-Backend ${String.fromCharCode(97 + i)};
    location / { return 200 "ok"; }
  }`,
    )
    .join("\n");
  return `${nginxCommon(dir, "backends")}
http {
${nginxHttpCommon(dir, "backends")}
  log_format one '1';
${servers}
}
`;
}

/** nginx as a weighted proxy: smooth weighted round robin, keep-alive to the upstreams. */
export function proxyNginxConf(dir, port, upstreams) {
  const servers = upstreams
    .map((u) => `    server 127.0.0.1:${u.port} weight=${u.nginxWeight};`)
    .join("\n");
  return `${nginxCommon(dir, "nginx-proxy")}
http {
${nginxHttpCommon(dir, "nginx-proxy")}
  upstream backends {
${servers}
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
}

/** HAProxy as a weighted proxy: weighted round robin, idle server connections reused. */
export function haproxyConf(port, upstreams) {
  const servers = upstreams
    .map((u, i) => `  server b${i} 127.0.0.1:${u.port} weight ${u.weight}`)
    .join("\n");
  return `global
  nbthread 1
  maxconn 5000

defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always

frontend fe
  bind 127.0.0.1:${port}
  default_backend be

backend be
  balance roundrobin
  option forwardfor
${servers}
`;
}
