import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// No user string reaches an HTTP header unchecked, and a URL that plain http would expose is refused before anything
/// is sent (the URL rules themselves: CDFSyncClientTests' URLSafetyTests).
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
}
