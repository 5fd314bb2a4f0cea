#!/usr/bin/env bash
# The one test command (README): installs what the tests use, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v tmux >/dev/null || need_apt+=(tmux)
command -v faketime >/dev/null || need_apt+=(faketime)
command -v oathtool >/dev/null || need_apt+=(oathtool)
# The LDAP connector's real targets: OpenLDAP (ppolicy, memberof, argon2)
# and Dovecot IMAP authenticating against it (tests/it/ldap.rs); slapd is
# also the directory that accounts are synced in from (tests/it/sources.rs).
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)
command -v ldapadd >/dev/null || need_apt+=(ldap-utils)
[ -x /usr/sbin/dovecot ] || need_apt+=(dovecot-imapd)
[ -e /usr/lib/dovecot/modules/auth/libauthdb_ldap.so ] || need_apt+=(dovecot-ldap)
# A real sshd is the target host of tests/it/hosts.rs (AuthorizedKeysCommand, certificates).
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing: ${need_apt[*]} (install them, e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# ssh-audit (PyPI) checks the server's algorithms as an auditor would.
# asyncssh plays the hostile client in tests/it/security.rs.
if [ ! -x .venv-test/bin/ssh-audit ] || [ ! -x .venv-test/bin/scim2 ] || ! .venv-test/bin/python -c "import aiosmtpd, asyncssh, scim2_server, scim2_cli, scim2_tester" 2>/dev/null; then
  python3 -m venv .venv-test
  .venv-test/bin/pip install -q ssh-audit aiosmtpd asyncssh scim2-server scim2-cli scim2-tester
fi
export SSH_AUDIT="$PWD/.venv-test/bin/ssh-audit"
export TEST_PYTHON="$PWD/.venv-test/bin/python"

cargo fmt --all -- --check
cargo test --locked
