import CDFSyncCore
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// The invitation ledger under SIGKILL (docs/activation.md, Delivery): the real `cdfsync` syncing a pipeline whose
/// activation invites is killed at random instants (mid-apply, mid-delivery, mid-webhook) and just before and after
/// every `rename(2)` of its delivery (the debug build's `CDFSYNC_TEST_KILL_AT_DELIVERY` hook), then run again until it
/// completes. Every time, the ledger, the invitation files and what the webhook accepted must equal an uninterrupted
/// run's: no invitation lost, none doubled.
@Suite("Activation under SIGKILL", .serialized)
struct ActivationKillTests {
    static let table = "main.research.invite_panel"

    func pipelineYAML(port: Int, dir: TempDir, hook: String) -> String {
        """
        name: invites
        connection: {host: "http://127.0.0.1:\(port)", warehouse_id: 8a1c2f3d4e5b6a70}
        source: \(Self.table)
        mapping: {external_id: participant_id, first_name: first_name, email: email, phone: phone, country: country,
                  segment: segment, consent_status: consent_status}
        consent: {opted_in: [opted_in]}
        validation: {required: [external_id], max_invalid_ratio: 1.0, default_phone_region: GB}
        sinks: [{type: ndjson, directory: "\(dir.sub("out"))"}]
        state_dir: "\(dir.sub("state"))"
        activation:
          invite_study: S-KILL
          webhook: {url: "http://127.0.0.1:\(port)/_hook/\(hook)"}
        """
    }

    func cdfsync(_ arguments: [String], deadline: Double? = nil, kill: String? = nil) throws -> ProcessResult {
        var environment = ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"]
        if let kill { environment["CDFSYNC_TEST_KILL_AT_DELIVERY"] = kill }
        return try ChildProcess.run(try BuiltProduct.cdfsync.path, arguments, environment: environment,
            deadline: deadline)
    }

    /// A state directory with the pipeline written and its activation confirmed (nothing synced yet).
    func prepared(_ sim: RunningSimulator, _ name: String, hook: String) throws -> (TempDir, String) {
        let dir = TempDir(name)
        let file = dir.sub("p.yaml")
        try Data(pipelineYAML(port: sim.port, dir: dir, hook: hook).utf8).write(to: URL(fileURLWithPath: file))
        let confirmed = try cdfsync(["pipeline", "activate", file, "--yes", "--sample-rows", "0"])
        #expect(confirmed.succeeded, "\(confirmed.output)")
        return (dir, file)
    }

    func sync(_ file: String, deadline: Double? = nil, kill: String? = nil) throws -> ProcessResult {
        try cdfsync(["sync", file, "--batch-size", "250", "--max-versions-per-statement", "1"], deadline: deadline,
            kill: kill)
    }

    /// What the run left: ledger entries (source key, state), the invitation lines' keys, and the webhook's.
    struct Result: Equatable {
        var ledger: [String]
        var lines: [String]
        var webhook: [String]
    }

    func result(_ sim: RunningSimulator, _ dir: TempDir, hook: String) throws -> Result {
        let store = try PanelStore(directory: dir.sub("state"), access: .reader)
        let ledger = try store.invitations(pipeline: "invites").map { "\($0.externalID) \($0.state.rawValue)" }.sorted()
        let invitations = dir.sub("out") + "/invitations"
        let files = try FileManager.default.contentsOfDirectory(atPath: invitations)
            .filter { $0.hasPrefix("invitations-") && $0.hasSuffix(".ndjson.zst") }.sorted()
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: invitations)).contains { $0.hasSuffix(".tmp") })
        var lines: [String] = []
        for f in files {
            let text = String(decoding: try Zstd.decompress(Array(try Data(contentsOf: URL(fileURLWithPath: invitations + "/" + f)))), as: UTF8.self)
            for line in text.split(separator: "\n") {
                let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                lines.append("\(o["external_id"] as! String) \(o["idempotency_key"] as! String)")
            }
        }
        // The manifest lists exactly the files.
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: invitations + "/manifest.json"))) as? [String: Any])
        #expect((manifest["segments"] as? [[String: Any]])?.compactMap { $0["file"] as? String } == files)
        let accepted = sim.sim.webhookDeliveries(name: hook).accepted.map { d -> String in
            let o = (try? JSONSerialization.jsonObject(with: Data(d.body))) as? [String: Any]
            #expect(d.idempotencyKey == o?["idempotency_key"] as? String)
            return "\(o?["external_id"] as? String ?? "?") \(d.idempotencyKey ?? "?")"
        }
        return Result(ledger: ledger, lines: lines.sorted(), webhook: accepted.sorted())
    }

    func simulator() throws -> RunningSimulator {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 200))
        try sim.sim.addSyntheticTable(name: Self.table, rows: 2500, seed: 11, updateFraction: 0.2, updateVersions: 4)
        _ = try sim.sim.appendSyntheticCommit(table: Self.table, updateFraction: 0.2, insertRows: 500)
        return sim
    }

    @Test func killedAtRandomInstantsNoInvitationIsLostOrDoubled() throws {
        let sim = try simulator()
        let (refDir, refFile) = try prepared(sim, "invite-ref", hook: "ref")
        let started = Date()
        let ref = try sync(refFile)
        #expect(ref.succeeded, "\(ref.output)")
        let duration = Date().timeIntervalSince(started)
        let expected = try result(sim, refDir, hook: "ref")
        #expect(expected.lines.count > 1000, "most opted-in participants are invited")
        #expect(Set(expected.lines).count == expected.lines.count)
        #expect(expected.webhook == expected.lines)
        // Keys with no file line are withdrawn (opted out before the run's delivery), never lost.
        #expect(expected.ledger.allSatisfy { $0.hasSuffix(" sent") || $0.hasSuffix(" withdrawn") })

        var rng = SplitMix(seed: 20261207)
        var landed = 0
        for round in 0..<3 {
            let hook = "random-\(round)"
            let (dir, file) = try prepared(sim, "invite-kill-\(round)", hook: hook)
            var kills = 0
            while kills < 6 {
                let delay = duration * (0.05 + 0.9 * Double(rng.next() % 1000) / 1000.0)
                let run = try sync(file, deadline: delay)
                if run.succeeded { break }
                #expect(run.killedAtDeadline, "\(run.output)")
                kills += 1
                if FileManager.default.fileExists(atPath: dir.sub("state") + "/data.mdb"),
                    try !PanelStore(directory: dir.sub("state"), access: .reader).invitations(pipeline: "invites").isEmpty
                {
                    landed += 1  // killed after some invitations were decided
                }
            }
            #expect(try sync(file).succeeded)
            #expect(try result(sim, dir, hook: hook) == Result(ledger: expected.ledger, lines: expected.lines,
                webhook: expected.webhook.map { $0 }), "round \(round) after \(kills) kill(s)")
        }
        #expect(landed >= 2, "kills must land after invitations were decided (\(landed) did)")
    }

    @Test func killedAtEveryRenameOfDeliveryNoInvitationIsLostOrDoubled() throws {
        let sim = try simulator()
        let (refDir, refFile) = try prepared(sim, "invite-rename-ref", hook: "rename-ref")
        #expect(try sync(refFile).succeeded)
        let expected = try result(sim, refDir, hook: "rename-ref")
        var killedAt: [String] = []
        for when in ["before-rename", "after-rename"] {
            for n in 1...16 {
                let hook = "\(when)-\(n)"
                let (dir, file) = try prepared(sim, "invite-\(hook)", hook: hook)
                let first = try sync(file, kill: "\(when):\(n)")
                if first.succeeded { break }  // fewer renames than n: every one has been tried
                #expect(first.signaled, "\(first.output)")
                killedAt.append(first.output.split(separator: "\n").last { $0.contains("killed") }.map(String.init) ?? "")
                let second = try sync(file)
                #expect(second.succeeded, "\(second.output)")
                let got = try result(sim, dir, hook: hook)
                #expect(got == Result(ledger: expected.ledger, lines: expected.lines, webhook: expected.webhook),
                    "killed \(when) \(n)")
            }
        }
        // The renames include the invitation segments and their manifest, not only the changes'.
        #expect(killedAt.contains { $0.contains("invitations-") }, "\(killedAt)")
        #expect(killedAt.count >= 8, "\(killedAt)")
    }
}
