#!/usr/bin/env bash
# deploy/cluster.sh's certificates: each node's verifies against the CA, for
# TLS server and client use; its SAN names the node and its 127.0.0.x address;
# the key matches; running it again keeps what exists.
#   certs_test.sh SOURCE_DIR
set -euo pipefail
src=$1
tmp=$(mktemp -d /tmp/chat-deploy-certs-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
d=$tmp/certs
"$src/deploy/cluster.sh" certs "$d" 3

openssl x509 -in "$d/ca.pem" -noout -ext basicConstraints | grep -q 'CA:TRUE'
for i in 1 2 3; do
  cert=$d/node$i.pem key=$d/node$i-key.pem
  openssl verify -CAfile "$d/ca.pem" "$cert"
  openssl verify -CAfile "$d/ca.pem" -purpose sslserver "$cert" >/dev/null
  openssl verify -CAfile "$d/ca.pem" -purpose sslclient "$cert" >/dev/null
  san=$(openssl x509 -in "$cert" -noout -ext subjectAltName)
  echo "node$i SAN: $(echo "$san" | tail -n1)"
  echo "$san" | grep -q "DNS:node$i" || { echo "node$i: no DNS:node$i in the SAN"; exit 1; }
  echo "$san" | grep -q "IP Address:127.0.0.$((i + 1))" || { echo "node$i: no IP 127.0.0.$((i + 1))"; exit 1; }
  [ "$(openssl pkey -in "$key" -pubout)" = "$(openssl x509 -in "$cert" -noout -pubkey)" ] \
    || { echo "node$i: key does not match the certificate"; exit 1; }
  [ "$(stat -c %a "$key")" = 600 ] || { echo "node$i: key readable by others"; exit 1; }
done
# Another node signed by a foreign CA must not verify (the check means something).
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=other -keyout "$tmp/other-key.pem" -out "$tmp/other.pem" 2>/dev/null
if openssl verify -CAfile "$d/ca.pem" "$tmp/other.pem" >/dev/null 2>&1; then
  echo "a certificate from another CA verified"; exit 1
fi
# Idempotent: a second run (with one node more) keeps the CA and node1.
before=$(openssl x509 -in "$d/node1.pem" -noout -fingerprint)
ca_before=$(openssl x509 -in "$d/ca.pem" -noout -fingerprint)
"$src/deploy/cluster.sh" certs "$d" 4
[ "$before" = "$(openssl x509 -in "$d/node1.pem" -noout -fingerprint)" ]
[ "$ca_before" = "$(openssl x509 -in "$d/ca.pem" -noout -fingerprint)" ]
openssl verify -CAfile "$d/ca.pem" "$d/node4.pem"
echo "certificates: ok"
