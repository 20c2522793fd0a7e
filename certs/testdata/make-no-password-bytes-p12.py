"""Makes no-password-bytes.p12, the fixture of certs/index.test.ts.

PKCS#12 has two readings of "no password": the empty BMPString (two zero
bytes, what `openssl pkcs12 -export -passout pass:` and Python's
`serialize_key_and_certificates(..., NoEncryption())` write) and no password
bytes at all (what OpenSSL's PKCS12_create writes for a NULL password, as
other writers do). The openssl command line cannot write the second, so this
calls libcrypto's PKCS12_create directly: the MAC key and the 3DES keys of
both bags derive from no bytes. Run once; the output is committed.

    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -keyout key.pem -out cert.pem -days 36500 -subj /CN=no-password-bytes.example
    python3 make-no-password-bytes-p12.py key.pem cert.pem no-password-bytes.p12
    openssl pkcs12 -in no-password-bytes.p12 -passin pass: -info -nodes  # reads it (tries no bytes first)
"""

import ctypes
import sys

lib = ctypes.CDLL("libcrypto.so.3")
VP = ctypes.c_void_p
lib.BIO_new_mem_buf.restype = VP
lib.BIO_new_mem_buf.argtypes = [ctypes.c_char_p, ctypes.c_int]
lib.PEM_read_bio_PrivateKey.restype = VP
lib.PEM_read_bio_PrivateKey.argtypes = [VP] * 4
lib.PEM_read_bio_X509.restype = VP
lib.PEM_read_bio_X509.argtypes = [VP] * 4
lib.PKCS12_create.restype = VP
lib.PKCS12_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, VP, VP, VP] + [ctypes.c_int] * 5
lib.i2d_PKCS12.restype = ctypes.c_int
lib.i2d_PKCS12.argtypes = [VP, ctypes.POINTER(VP)]


def read_bio(path):
    data = open(path, "rb").read()
    return lib.BIO_new_mem_buf(data, len(data)), data


key_bio, _key = read_bio(sys.argv[1])
cert_bio, _cert = read_bio(sys.argv[2])
key = lib.PEM_read_bio_PrivateKey(key_bio, None, None, None)
cert = lib.PEM_read_bio_X509(cert_bio, None, None, None)
assert key and cert, "cannot read the key or the certificate"
TRIPLE_DES = 146  # NID_pbe_WithSHA1And3_Key_TripleDES_CBC
# pass=NULL: no password bytes for the MAC and the bags; iterations 2048.
p12 = lib.PKCS12_create(None, None, key, cert, None, TRIPLE_DES, TRIPLE_DES, 2048, 2048, 0)
assert p12, "PKCS12_create failed"
size = lib.i2d_PKCS12(p12, None)
buf = ctypes.create_string_buffer(size)
out = ctypes.cast(buf, VP)
lib.i2d_PKCS12(p12, ctypes.byref(out))
open(sys.argv[3], "wb").write(buf.raw)
