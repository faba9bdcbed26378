#!/usr/bin/env bash
# Build and install pgvector for the machine's PostgreSQL 15 from Debian's source package.
# Debian 12 packages no pgvector for PostgreSQL 15, so take the source package from trixie.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
if [ -f "/usr/share/postgresql/${PG_MAJOR}/extension/vector.control" ] \
   && [ -f "/usr/lib/postgresql/${PG_MAJOR}/lib/vector.so" ]; then
  echo "pgvector already installed for PostgreSQL ${PG_MAJOR}"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
src=/etc/apt/sources.list.d/hearth-trixie-src.sources
if [ ! -f "$src" ]; then
  cat > "$src" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
apt-get install -y -qq "postgresql-server-dev-${PG_MAJOR}" make gcc dpkg-dev >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source -qq pgvector >/dev/null
cd pgvector-*/
make -s PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" OPTFLAGS="" >/dev/null
make -s PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" install >/dev/null

# Installing the server headers can pull a newer minor release of the server and stop it.
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  pg_ctlcluster --skip-systemctl-redirect "${PG_MAJOR}" main start
fi
echo "pgvector $(grep default_version /usr/share/postgresql/${PG_MAJOR}/extension/vector.control | cut -d"'" -f2) installed for PostgreSQL ${PG_MAJOR}"
