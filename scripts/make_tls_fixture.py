"""Writes test/fixtures/tls/{cert,key}.pem: a self-signed certificate for 127.0.0.1 and fcn-test.invalid that the download
test's HTTPS server presents (the test trusts it through NODE_EXTRA_CA_CERTS). Valid from 2000 to 2100,
so a machine with a wrong clock still accepts it. Run with Debian's /usr/bin/python3 (python3-cryptography)."""
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

out = pathlib.Path(__file__).resolve().parent.parent / 'test' / 'fixtures' / 'tls'
out.mkdir(parents=True, exist_ok=True)
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'fcn test server 127.0.0.1')])
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(datetime.datetime(2000, 1, 1))
    .not_valid_after(datetime.datetime(2100, 1, 1))
    .add_extension(x509.SubjectAlternativeName([
        x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
        x509.DNSName('fcn-test.invalid'),  # the name the proxy test asks its proxy for
    ]), critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
(out / 'key.pem').write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
(out / 'cert.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
print(f'wrote {out}/cert.pem and key.pem')
