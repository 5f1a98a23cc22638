using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// The fake's TLS certificate: self-signed for 127.0.0.1 and localhost, a CA (so that SSL_CERT_FILE can name it),
/// valid for two days. Its PEM is written to cert.pem for clients to trust (SSL_CERT_FILE at process start, or a
/// handler pinning its thumbprint in-process).
/// </summary>
internal static class SelfSignedCertificate
{
    public static X509Certificate2 CreateAndWrite(string directory)
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=FakeArm 127.0.0.1", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
        Directory.CreateDirectory(directory);
        // A trailing newline, so that the file can be concatenated with a CA bundle.
        File.WriteAllText(Path.Combine(directory, "cert.pem"), created.ExportCertificatePem() + "\n");
        // Through PKCS#12 so that the private key is usable by SslStream on every platform.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }
}
