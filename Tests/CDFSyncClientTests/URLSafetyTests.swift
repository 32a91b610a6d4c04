import CDFSyncClient
import Testing

/// "Plain http only on loopback" looks at the host libcurl will connect to, not at the URL's first characters (what
/// a refused URL does to a sync or a webhook: IntegrationTests' SafeTransportTests).
@Suite("URLs that may carry a token")
struct URLSafetyTests {
    @Test(arguments: [
        "http://localhost@192.0.2.1:9/hook", "http://127.0.0.1.nip.io/", "http://127.0.0.1@evil.example/",
        "http://user:pass@127.0.0.1/", "https://user@hooks.example.com/", "http://localhost./", "http://[::2]/",
        "http://10.0.0.1/", "ftp://127.0.0.1/", "http://127.0.0.1 /", "no scheme at all", "http://loc\nalhost/",
    ])
    func urlsThatMustNotCarryATokenAreRefused(url: String) {
        #expect(throws: ParsedURL.Problem.self, "\(url)") { try ParsedURL(url).requireSecure() }
    }

    @Test(arguments: [
        ("https://hooks.example.com/a?b=c", "hooks.example.com"), ("http://127.0.0.1:8080/x", "127.0.0.1"),
        ("http://127.255.3.4/", "127.255.3.4"), ("http://[::1]:9/", "[::1]"), ("http://localhost/", "localhost"),
        ("http://LOCALHOST:1/", "localhost"), ("http://2130706433/", "127.0.0.1"),
    ])
    func urlsToHTTPSOrLoopbackAreAccepted(url: String, host: String) throws {
        let parsed = try ParsedURL(url)
        try parsed.requireSecure()
        #expect(parsed.host == host)
    }

    /// The workspace host goes through the same parser (it carries the workspace token).
    @Test(arguments: ["http://localhost@192.0.2.1:9", "http://127.0.0.1.nip.io", "https://me@dbc-1.cloud.databricks.com"])
    func aWorkspaceHostIsCheckedTheSameWay(host: String) {
        #expect(throws: DatabricksError.self, "\(host)") { try ConnectionSettings.normalizeHost(host) }
    }
}
