#!/usr/bin/env bash
# Throwaway test peers on loopback, for the README's test command.
#   scripts/peers.sh start DIR   -> starts what the tests need under DIR, prints `export` lines
#   scripts/peers.sh stop DIR    -> stops them
# Everything binds 127.0.0.1 only. Installs missing Debian packages with apt.
#
# Peers: PostgreSQL; Dovecot (IMAP + LMTP) and Postfix (SMTP -> LMTP into
# Dovecot, real DSNs for unknown users) for the mail gateway; sipp is only
# installed, because the SIP interop tests start their own instances.
# Mail users (domain gw.test, password "testpw"): support, sales, customer,
# consultant, bounces. `user+box@gw.test` is delivered into the folder `box`
# of `user` (created on demand), so each test can own a folder.
set -euo pipefail
cmd=${1:?start|stop}
PEERS=${2:?peers dir}
PG_PORT=${PG_PORT:-15432}
PG_BIN=/usr/lib/postgresql/15/bin
IMAP_PORT=${IMAP_PORT:-10143}
IMAPS_PORT=${IMAPS_PORT:-10993}
LMTP_PORT=${LMTP_PORT:-10024}
SMTP_PORT=${SMTP_PORT:-10025}
SMSC_PORT=${SMSC_PORT:-12775}
MAIL_USERS="support sales customer consultant bounces"
MAIL_PASSWORD=testpw

need_pkg() { # need_pkg BINARY PACKAGE...
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
    echo "peers: installing ${*:2}" >&2
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2 || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >&2
  fi
}

start_pg() {
  if [ ! -x "$PG_BIN/initdb" ]; then need_pkg "$PG_BIN/initdb" postgresql; fi
  mkdir -p "$PEERS/pg"
  chown postgres:postgres "$PEERS/pg" 2>/dev/null || true
  chmod 755 "$PEERS"
  if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
  $AS "$PG_BIN/initdb" -D "$PEERS/pg/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$PEERS/pg/initdb.log" 2>&1
  $AS "$PG_BIN/pg_ctl" -D "$PEERS/pg/data" -l "$PEERS/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PEERS/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >&2
  echo "export CENTRALINO_TEST_PG=postgres://postgres@127.0.0.1:$PG_PORT"
}

stop_pg() {
  [ -d "$PEERS/pg/data" ] || return 0
  if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
  $AS "$PG_BIN/pg_ctl" -D "$PEERS/pg/data" -m fast stop >&2 || true
}

free_port() { # free_port PORT: PORT, or the next one nobody listens on
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

wait_port() { # wait_port PORT NAME: until something accepts on 127.0.0.1:PORT (~5 s)
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "peers: $2 did not open 127.0.0.1:$1" >&2
  return 1
}

start_dovecot() {
  need_pkg dovecot dovecot-imapd dovecot-lmtpd
  # Another run's peers may hold the default ports: take the next free ones
  # (the exported variables say which).
  IMAP_PORT=$(free_port "$IMAP_PORT")
  IMAPS_PORT=$(free_port "$IMAPS_PORT")
  LMTP_PORT=$(free_port "$LMTP_PORT")
  local D="$PEERS/dovecot"
  mkdir -p "$D/run" "$D/state" "$D/mail" "$D/tls"
  # A throwaway CA and a server certificate for 127.0.0.1/localhost: IMAPS
  # and STARTTLS are tested with the CA as the mailbox's trusted CA file.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=centralino test CA" \
    -keyout "$D/tls/ca.key" -out "$D/tls/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$D/tls/server.key" -out "$D/tls/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$D/tls/ext.cnf"
  openssl x509 -req -in "$D/tls/server.csr" -CA "$D/tls/ca.pem" -CAkey "$D/tls/ca.key" -CAcreateserial -days 2 \
    -extfile "$D/tls/ext.cnf" -out "$D/tls/server.pem" >/dev/null 2>&1
  chmod 644 "$D/tls/ca.pem" "$D/tls/server.pem"
  : >"$D/users"
  for u in $MAIL_USERS; do
    # passwd-file: user:{PLAIN}pw:uid:gid::home:: — uid 8 is Debian's `mail`
    # user, so no system user is created; first_valid_uid below allows it.
    echo "$u@gw.test:{PLAIN}$MAIL_PASSWORD:8:8::$D/mail/$u@gw.test::" >>"$D/users"
  done
  chown -R 8:8 "$D/mail"
  cat >"$D/dovecot.conf" <<CONF
instance_name = centralino-test
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$D/tls/server.pem
ssl_key = <$D/tls/server.key
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 8
mail_location = maildir:~/Maildir
mail_privileged_group =
mail_max_userip_connections = 1000
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%Lu $D/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
protocol lmtp {
  postmaster_address = postmaster@gw.test
}
service anvil {
  chroot =
}
CONF
  dovecot -c "$D/dovecot.conf" -n >/dev/null
  dovecot -c "$D/dovecot.conf" </dev/null >/dev/null 2>&1
  wait_port "$IMAP_PORT" "dovecot imap"
  wait_port "$IMAPS_PORT" "dovecot imaps"
  wait_port "$LMTP_PORT" "dovecot lmtp"
  echo "export CENTRALINO_TEST_IMAP=127.0.0.1:$IMAP_PORT"
  echo "export CENTRALINO_TEST_IMAPS=127.0.0.1:$IMAPS_PORT"
  echo "export CENTRALINO_TEST_IMAP_CA=$D/tls/ca.pem"
  echo "export CENTRALINO_TEST_MAIL_DOMAIN=gw.test"
  echo "export CENTRALINO_TEST_MAIL_USERS='$MAIL_USERS'"
  echo "export CENTRALINO_TEST_MAIL_PASSWORD=$MAIL_PASSWORD"
}

stop_dovecot() {
  local pidf="$PEERS/dovecot/run/master.pid"
  [ -s "$pidf" ] || return 0
  kill "$(cat "$pidf")" 2>/dev/null || true
}

start_postfix() {
  if ! command -v postfix >/dev/null 2>&1; then
    # Without this answer the package's postinst asks which kind of mail
    # system this is; "No configuration" writes no /etc/postfix/main.cf.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    need_pkg postfix postfix
  fi
  SMTP_PORT=$(free_port "$SMTP_PORT")
  local P="$PEERS/postfix"
  mkdir -p "$P/etc" "$P/spool" "$P/data"
  chown postfix:postfix "$P/data"
  cat >"$P/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $P/spool
data_directory = $P/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $P/maillog
maillog_file_prefixes = /tmp, /var, /dev/stdout, $PEERS
syslog_name = postfix-centralino-test
myhostname = mx.gw.test
mydomain = gw.test
myorigin = gw.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP test
biff = no
smtputf8_enable = no
recipient_delimiter = +
# all of gw.test goes to Dovecot over LMTP; Dovecot answers 550 5.1.1 for
# unknown users, so Postfix sends a real DSN back.
virtual_mailbox_domains = gw.test
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
# nothing may ever leave the machine
default_transport = error:5.7.1 outbound delivery disabled in tests
relay_transport = error:5.7.1 outbound delivery disabled in tests
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
delay_warning_time = 0
bounce_queue_lifetime = 1h
maximal_queue_lifetime = 1h
in_flow_delay = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
CONF
  # No chroot anywhere (a private instance has no copies of /etc in its
  # spool), and smtpd only on the loopback test port.
  cat >"$P/etc/master.cf" <<CONF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
  # Postfix reports fatal start-up errors only to syslog or a tty; there is
  # no syslog here, so `script` gives it a tty whose output we keep.
  script -qc "postfix -c '$P/etc' start" "$P/start.log" </dev/null >/dev/null 2>&1 || true
  if ! wait_port "$SMTP_PORT" "postfix smtpd"; then
    cat "$P/start.log" "$P/maillog" >&2 2>/dev/null || true
    return 1
  fi
  echo "export CENTRALINO_TEST_SMTP=127.0.0.1:$SMTP_PORT"
}

stop_postfix() {
  [ -f "$PEERS/postfix/etc/main.cf" ] || return 0
  postfix -c "$PEERS/postfix/etc" stop >/dev/null 2>&1 || true
}

# A fake SMSC (SMPP 3.4, PyPI smpp34 in a venv) with delivery receipts and
# throttling: mailgate/tests/smsc/fake_smsc.py.
start_smsc() {
  local S="$PEERS/smsc"
  mkdir -p "$S"
  if [ ! -x "$S/venv/bin/python" ]; then
    python3 -m venv "$S/venv" >&2 || { need_pkg /usr/lib/python3/dist-packages/ensurepip python3-venv; python3 -m venv "$S/venv" >&2; }
    "$S/venv/bin/pip" install -q smpp34 >&2
  fi
  SMSC_PORT=$(free_port "$SMSC_PORT")
  local script
  script="$(cd "$(dirname "$0")/.." && pwd)/mailgate/tests/smsc/fake_smsc.py"
  DLR_DELAY=0.1 QUIET=1 nohup "$S/venv/bin/python" "$script" "$SMSC_PORT" </dev/null >"$S/smsc.log" 2>&1 &
  echo $! >"$S/pid"
  wait_port "$SMSC_PORT" "fake SMSC"
  echo "export CENTRALINO_TEST_SMSC=127.0.0.1:$SMSC_PORT"
  echo "export CENTRALINO_TEST_SMSC_PYTHON=$S/venv/bin/python"
}

stop_smsc() {
  [ -s "$PEERS/smsc/pid" ] || return 0
  kill "$(cat "$PEERS/smsc/pid")" 2>/dev/null || true
}

start_all() {
  start_pg
  # The SIP tests start their own sipp instances; only the package is needed.
  need_pkg sipp sip-tester
  # A real softphone for the media interop tests (they start their own).
  need_pkg baresip baresip-core
  # Headless Chromium for the web console's browser scenarios.
  need_pkg chromium chromium chromium-driver
  # HTTP load for `loadtest tracking` (wrk -t2 -c64 --latency).
  need_pkg wrk wrk
  start_dovecot
  start_postfix
  start_smsc
}

stop_all() {
  stop_smsc
  stop_postfix
  stop_dovecot
  stop_pg
}

case "$cmd" in
  start) start_all ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
