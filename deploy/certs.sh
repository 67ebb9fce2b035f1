#!/usr/bin/env bash
# A CA and certificates for the cluster port's mutual TLS (CHAT_CLUSTER_TLS_*).
#
#   deploy/certs.sh DIR NAME[,SAN...] [NAME[,SAN...]...]
#
# In DIR: ca.pem and ca-key.pem (made once and kept), and for each NAME
# NAME.pem and NAME-key.pem: EC P-256, signed by the CA, CN=NAME, SAN NAME and
# each SAN (DNS, or IP when it is an address; wildcards allowed), usable as TLS
# server and client. Existing files are kept, so running it again only adds
# what is missing; a new CA (ca.pem deleted) remakes every certificate.
#   deploy/certs.sh .data/certs node1,localhost,127.0.0.2 node2,localhost,127.0.0.3
#   deploy/certs.sh /certs chatd-1 chatd-2 chatd-3                  (compose)
#   deploy/certs.sh out 'peer,*.chatd-peers.chat.svc.cluster.local' (Kubernetes)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
command -v openssl >/dev/null || { echo "certs.sh: openssl is missing" >&2; exit 1; }
dir=$1; shift
mkdir -p "$dir"
chmod 755 "$dir"

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca-key.pem" ]; then
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca-key.pem")
  openssl req -x509 -new -sha256 -days 3650 -key "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -subj "/CN=chatd cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "certs.sh: new CA $dir/ca.pem" >&2
  # Certificates signed by an earlier CA would no longer verify.
  for spec in "$@"; do rm -f "$dir/${spec%%,*}.pem" "$dir/${spec%%,*}-key.pem"; done
fi

for spec in "$@"; do
  IFS=, read -r -a parts <<<"$spec"
  name=${parts[0]}
  [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { echo "certs.sh: bad name '$name'" >&2; exit 2; }
  [ -s "$dir/$name.pem" ] && [ -s "$dir/$name-key.pem" ] && continue
  san="DNS:$name"
  for s in "${parts[@]:1}"; do
    if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then san+=",IP:$s"; else san+=",DNS:$s"; fi
  done
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name-key.pem")
  ext=$(mktemp)
  cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EXT
  openssl req -new -sha256 -key "$dir/$name-key.pem" -subj "/CN=$name" 2>/dev/null \
    | openssl x509 -req -sha256 -days 825 -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$ext"
  echo "certs.sh: $dir/$name.pem ($san)" >&2
done
