import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation
import Testing
import WarehouseSimulator

/// No user string reaches an HTTP header unchecked, and "plain http only on loopback" looks at the host libcurl
/// will connect to, not at the URL's first characters.
@Suite("Headers and URLs")
struct SafeTransportTests {
    @Test(arguments: [
        ("Idempotency-Key", "panel\r\nX-Injected: yes"), ("Idempotency-Key", "a\nb"), ("Authorization", "Bearer t\0k"),
        ("X-Bad Name", "v"), ("X-Bad:Name", "v"), ("", "v"),
    ])
    func aHeaderThatCouldEndItsLineIsRefusedBeforeAnythingIsSent(name: String, value: String) throws {
        let sim = try RunningSimulator()
        let transport = CurlTransport()
        let request = HTTPRequest(method: .post, url: "\(sim.baseURL)/_hook/inject", headers: [(name, value)], body: Array("[]".utf8))
        #expect(throws: RequestRefused.self) { _ = try transport.performCollecting(request) }
        #expect(sim.sim.webhookDeliveries(name: "inject").accepted.isEmpty, "nothing reached the receiver")
        // The same request with a clean header is sent (the refusal is the header's, not the request's).
        _ = try transport.performCollecting(HTTPRequest(method: .post, url: "\(sim.baseURL)/_hook/inject",
            headers: [("Idempotency-Key", "panel-1-2")], body: Array("[]".utf8)))
        #expect(sim.sim.webhookDeliveries(name: "inject").accepted.count == 1)
    }

    @Test func aWebhookRefusesAPipelineNameThatWouldInjectHeaders() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        var p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML)
        p.sinks = [.init(type: .ndjson, directory: dir.sub("out"))]
        let store = try PanelStore(directory: dir.sub("s"))
        _ = try CDFSync(client: StatementClient(settings: try sim.settings()), store: store, options: try SyncOptions(pipeline: p)).run()
        let hook = WebhookSink(url: "\(sim.baseURL)/_hook/panel")
        #expect {
            _ = try hook.deliver(store: store, pipeline: "panel\r\nX-Injected: yes", segmentsDirectory: dir.sub("out"))
        } throws: { e in "\(e)".contains("holds characters a name may not") }
        #expect(sim.sim.webhookDeliveries(name: "panel").accepted.isEmpty)
        #expect(try hook.deliver(store: store, pipeline: "panel", segmentsDirectory: dir.sub("out")) > 0)
    }

    /// `http://x@127.0.0.1:port/…` passed the prefix test and reached the receiver; user info in a URL is refused
    /// whatever the host.
    @Test func aWebhookURLWithUserInfoIsRefusedBeforeSending() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        var p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML)
        p.sinks = [.init(type: .ndjson, directory: dir.sub("out")),
                   .init(type: .webhook, url: "http://localhost@127.0.0.1:\(sim.port)/_hook/panel")]
        let store = try PanelStore(directory: dir.sub("s"))
        #expect {
            _ = try CDFSync(client: StatementClient(settings: try sim.settings()), store: store,
                options: try SyncOptions(pipeline: p)).run()
        } throws: { e in "\(e)".contains("the webhook URL is refused: the URL carries user info") }
        #expect(sim.sim.webhookDeliveries(name: "panel").accepted.isEmpty)
    }

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
