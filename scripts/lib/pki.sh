# Test certificates made with openssl, for the scripts that run Debian's
# mosquitto over mutual TLS (interop-mqtt.sh, bench-mqtt.sh). Source it after
# defining die(); call pki_init DIR "CA name" first.
#
# mosquitto started as root drops to the `mosquitto` user, so every file and
# the directory are made readable by all (pki_publish).

PKI_EC="ec -pkeyopt ec_paramgen_curve:prime256v1"
PKI_SERVER_EXT="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
PKI_CLIENT_EXT="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"

# pki_init DIR CA_CN: an ECDSA CA in DIR/ca.pem, DIR/ca.key.
pki_init() {
    PKI="$1"
    mkdir -p "$PKI"
    cat >"$PKI/ca.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $2
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
    pki_ca ca "$2"
}

# pki_ca NAME CN: a self-signed ECDSA CA certificate NAME.pem, key NAME.key.
pki_ca() {
    # shellcheck disable=SC2086
    openssl req -x509 -config "$PKI/ca.cnf" -extensions v3_ca -newkey $PKI_EC -nodes \
        -days 30 -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.pem" 2>/dev/null \
        || die "openssl: CA $1"
}

# pki_issue NAME CN KEYSPEC EXTENSIONS [CA]: NAME.pem and NAME.key signed by
# CA (default: ca).
pki_issue() {
    local name="$1" cn="$2" keyspec="$3" ext="$4" ca="${5:-ca}"
    # shellcheck disable=SC2086
    openssl req -newkey $keyspec -nodes -subj "/CN=$cn" \
        -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null || die "openssl: $name key"
    printf '%b' "$ext" >"$PKI/$name.ext"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.pem" -CAkey "$PKI/$ca.key" \
        -CAcreateserial -days 30 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem" 2>/dev/null \
        || die "openssl: $name certificate"
}

# pki_publish: readable by the broker's unprivileged user.
pki_publish() {
    chmod 755 "$(dirname "$PKI")" "$PKI"
    chmod 644 "$PKI"/*
}
