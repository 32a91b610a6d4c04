import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

@Suite("Webhook sink")
struct WebhookSinkTests {
    @Test func batchesArriveOnceWithIdempotencyKeysThroughRetriesAndAFailedRun() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        var p = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML)
        p.sinks = [.init(type: .ndjson, directory: dir.sub("out")),
                   .init(type: .webhook, url: "\(sim.baseURL)/_hook/panel", batchSize: 50)]
        // Two transient failures (retried within the run), then one rejection that fails the run.
        _ = sim.sim.addFault(Fault(match: .init(method: "POST", pathPrefix: "/_hook/"), count: 2, kind: .status, status: 503))
        func run() throws -> SyncSummary {
            let store = try PanelStore(directory: dir.sub("s"))
            let client = StatementClient(settings: try sim.settings())
            return try CDFSync(client: client, store: store, options: try SyncOptions(pipeline: p)).run()
        }
        let first = try run()
        #expect(first.webhookDelivered == first.delivered)
        _ = sim.sim.addFault(Fault(match: .init(method: "POST", pathPrefix: "/_hook/"), count: 1, kind: .status, status: 400))
        let latest = sim.sim.latestVersion(table: "main.research.participants")!
        let rows = (0..<120).map { #"["W-\#($0)","A","B","w\#($0)@example.com",null,null,"DE",null,null,null,"opted_in","2026-05-01T00:00:00.000Z"]"# }
        try sim.sim.appendCommit(table: "main.research.participants", Commit.decode(Data(
            #"{"version": \#(latest + 1), "timestamp": "2026-05-01T00:00:00.000Z", "operation": "WRITE", "insert": [\#(rows.joined(separator: ","))]}"#.utf8)))
        #expect(throws: SyncFailure.self) { _ = try run() }   // applied and written to segments, webhook refused
        let third = try run()                                    // resends from the webhook's cursor
        #expect(third.webhookDelivered == 120)

        let (accepted, duplicates) = sim.sim.webhookDeliveries(name: "panel")
        #expect(duplicates == 0)
        var seqs: [Int] = []
        var keys = Set<String>()
        for d in accepted {
            #expect(keys.insert(d.idempotencyKey ?? "").inserted)
            let lines = try JSONSerialization.jsonObject(with: Data(d.body)) as! [[String: Any]]
            #expect(lines.count <= 50)
            seqs += lines.map { $0["seq"] as! Int }
        }
        #expect(seqs == Array(1...seqs.count), "every delivered change exactly once, in order")
        #expect(seqs.count == first.delivered + 120)
    }
}

/// Two pipelines share a state directory (one panel, two sources) with an output directory each: each directory
/// gets its own pipeline's changes and a manifest of its own segments, and a webhook on one pipeline follows that
/// pipeline's segments only (it stopped at the other's, "missing from" its directory, before deliveries were routed).
@Suite("Pipelines sharing a state directory")
struct SharedStoreDeliveryTests {
    /// `panel` (output `out-panel`, a webhook with batches of 100) and `crm` (output `out-crm`): the same source,
    /// both in the state directory `s`.
    func pipelines(_ sim: RunningSimulator, _ dir: TempDir) throws -> (panel: Pipeline, crm: Pipeline) {
        var panel = try PipelineLoader.load(yaml: PipelineSyncTests.participantsYAML)
        panel.sinks = [.init(type: .ndjson, directory: dir.sub("out-panel")),
                       .init(type: .webhook, url: "\(sim.baseURL)/_hook/panel", batchSize: 100)]
        var crm = panel
        crm.name = "crm"
        crm.sinks = [.init(type: .ndjson, directory: dir.sub("out-crm"))]
        return (panel, crm)
    }

    static func run(_ p: Pipeline, _ sim: RunningSimulator, _ dir: TempDir) throws -> SyncSummary {
        let store = try PanelStore(directory: dir.sub("s"))
        return try CDFSync(client: StatementClient(settings: try sim.settings()), store: store,
            options: try SyncOptions(pipeline: p)).run()
    }

    /// Commits `count` new opted-in participants to the source.
    func appendParticipants(_ count: Int, _ sim: RunningSimulator) throws {
        let latest = sim.sim.latestVersion(table: "main.research.participants")!
        let rows = (0..<count).map { #"["W-\#($0)","A","B","w\#($0)@example.com",null,null,"DE",null,null,null,"opted_in","2026-05-01T00:00:00.000Z"]"# }
        try sim.sim.appendCommit(table: "main.research.participants", Commit.decode(Data(
            #"{"version": \#(latest + 1), "timestamp": "2026-05-01T00:00:00.000Z", "operation": "WRITE", "insert": [\#(rows.joined(separator: ","))]}"#.utf8)))
    }
    @Test func eachPipelinesChangesGoToItsOwnDirectoryAndWebhook() throws {
        let (sim, dir) = (try RunningSimulator(), TempDir())
        let (panel, crm) = try pipelines(sim, dir)
        func run(_ p: Pipeline) throws -> SyncSummary { try Self.run(p, sim, dir) }
        let a = try run(panel)
        let b = try run(crm)
        #expect(b.delivered > 0 && b.warnings.isEmpty, "\(b.warnings)")
        // A new commit: the panel's next run feeds its webhook past the crm's segment.
        try appendParticipants(1, sim)
        let c = try run(panel)
        #expect(c.webhookDelivered == 1, "\(c)")

        for (name, summary) in [("panel", a.delivered + c.delivered), ("crm", b.delivered)] {
            let out = dir.sub("out-\(name)")
            let lines = try deliveredLines(out)
            #expect(lines.count == summary)
            #expect(lines.allSatisfy { $0["scope"] as? String == name }, "only \(name)'s changes in \(out)")
            let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json"))) as! [String: Any]
            let listed = (manifest["segments"] as! [[String: Any]]).map { $0["file"] as! String }
            let present = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("changes-") }.sorted()
            #expect(listed == present, "the manifest of \(out) lists its own segments")
        }
        let (accepted, _) = sim.sim.webhookDeliveries(name: "panel")
        let scopes = try accepted.flatMap { try JSONSerialization.jsonObject(with: Data($0.body)) as! [[String: Any]] }
            .map { $0["scope"] as? String }
        #expect(scopes.count == a.delivered + 1 && scopes.allSatisfy { $0 == "panel" })
    }

    /// A webhook that resends from an old cursor across the other pipeline's sequence range still cuts its batches at
    /// fixed boundaries and never past `batch_size` (the range skipped held the boundary its batch would have ended at).
    @Test func aWebhookBatchNeverOutgrowsItsSizeAcrossTheOtherPipelinesRange() throws {
        let (sim, dir) = (try RunningSimulator(), TempDir())
        let (panel, crm) = try pipelines(sim, dir)
        func run(_ p: Pipeline) throws -> SyncSummary { try Self.run(p, sim, dir) }
        // The webhook refuses the first run's batches: its cursor stays at 0 (the run's changes are in its files).
        _ = sim.sim.addFault(Fault(match: .init(method: "POST", pathPrefix: "/_hook/"), count: 1, kind: .status, status: 400))
        #expect(throws: SyncFailure.self) { _ = try run(panel) }
        let other = try run(crm)  // the next range of sequences, into out-crm
        try appendParticipants(90, sim)
        let first = try deliveredLines(dir.sub("out-panel")).count  // sequences 1...first
        let last = try run(panel)  // the 90 new rows, then the webhook sends everything of the panel's from 1
        #expect(last.webhookDelivered == first + 90)

        let (accepted, duplicates) = sim.sim.webhookDeliveries(name: "panel")
        #expect(duplicates == 0)
        let batches = try accepted.map { try JSONSerialization.jsonObject(with: Data($0.body)) as! [[String: Any]] }
        #expect(batches.allSatisfy { $0.count <= 100 }, "\(batches.map(\.count))")
        let seqs = batches.flatMap { $0.map { $0["seq"] as! Int } }
        let gap = other.delivered
        #expect(seqs == Array(1...first) + Array(first + gap + 1...first + gap + 90))
        // Every batch lies inside one block of 100 sequences (before, the batch that reached the other pipeline's
        // range went on past it and held more than 100 lines).
        #expect(batches.allSatisfy { b in
            ((b.first!["seq"] as! Int) - 1) / 100 == ((b.last!["seq"] as! Int) - 1) / 100
        }, "\(batches.map { ($0.first!["seq"] as! Int, $0.last!["seq"] as! Int) })")
    }
}
