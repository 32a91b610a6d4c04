import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// The activation flow end to end (docs/activation.md), with the built `cdfsync` against the simulator over loopback:
/// a sync holds invitations until `pipeline activate` confirms; the confirmation releases what is held and still
/// eligible; the next sync sends them to files and the webhook; a change of the settings makes the confirmation
/// stale; `deactivate` stops; `status`, `runs show` and `invitations` say so.
@Suite("Activation over loopback", .serialized)
struct ActivationCLITests {
    static let table = "main.research.participants"

    func yaml(port: Int, dir: TempDir, countries: String = "[GB, IE]") -> String {
        """
        name: research-panel
        connection: {host: "http://127.0.0.1:\(port)", warehouse_id: 8a1c2f3d4e5b6a70}
        source: \(Self.table)
        mapping: {external_id: participant_id, first_name: first_name, last_name: last_name, email: email,
                  phone: phone, country: country, consent_status: consent_status}
        consent: {opted_in: [opted_in]}
        validation: {required: [external_id], default_phone_region: GB}
        sinks: [{type: ndjson, directory: "\(dir.sub("out"))"}]
        state_dir: "\(dir.sub("state"))"
        activation:
          invite_study: S-2026-04
          eligibility:
            - {field: country, op: in, value: \(countries)}
          webhook: {url: "http://127.0.0.1:\(port)/_hook/invites"}
        """
    }

    func cdfsync(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        try ChildProcess.run(try BuiltProduct.cdfsync.path, arguments,
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin", "USER": "tester"],
            stdin: stdin)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func activation(_ dir: TempDir) throws -> [String: Any] {
        let status = try cdfsync(["status", "--state-dir", dir.sub("state"), "--json"])
        #expect(status.succeeded, "\(status.output)")
        return try #require((try json(status.stdout)["activations"] as? [[String: Any]])?.first)
    }

    func ledger(_ dir: TempDir) throws -> [[String: Any]] {
        let r = try cdfsync(["invitations", "research-panel", "--state-dir", dir.sub("state"), "--json"])
        #expect(r.succeeded, "\(r.output)")
        return try r.stdout.split(separator: "\n").map { try json(String($0)) }
    }

    func invitationLines(_ dir: TempDir) throws -> [[String: Any]] {
        let d = dir.sub("out") + "/invitations"
        let files = try FileManager.default.contentsOfDirectory(atPath: d)
            .filter { $0.hasPrefix("invitations-") && $0.hasSuffix(".ndjson.zst") }.sorted()
        return try files.flatMap { f in
            try String(decoding: try Zstd.decompress(Array(try Data(contentsOf: URL(fileURLWithPath: d + "/" + f)))), as: UTF8.self)
                .split(separator: "\n").map { try json(String($0)) }
        }
    }

    /// Appends a commit inserting `row` (the demo table's columns) as the next version.
    func insert(_ sim: RunningSimulator, _ row: String) throws {
        let next = (sim.sim.latestVersion(table: Self.table) ?? 0) + 1
        let ts = String(format: "2026-05-%02dT10:00:00.000Z", next)
        try sim.sim.appendCommit(table: Self.table, Commit.decode(Data(
            #"{"version": \#(next), "timestamp": "\#(ts)", "operation": "WRITE", "insert": [\#(row)]}"#.utf8)))
    }

    @Test func heldUntilConfirmedThenSentOnceStaleAfterAChangeAndStoppedByDeactivate() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("activation-cli")
        let file = dir.sub("p.yaml")
        try Data(yaml(port: sim.port, dir: dir).utf8).write(to: URL(fileURLWithPath: file))
        #expect(try cdfsync(["pipeline", "validate", file, "--offline"]).succeeded)

        // 1. Not confirmed: the sync imports and holds.
        let first = try cdfsync(["sync", file])
        #expect(first.succeeded, "\(first.output)")
        #expect(first.stdout.contains("invitations    invite to study S-2026-04 (unconfirmed)"), "\(first.stdout)")
        #expect(first.stdout.contains("warning: invitations held: invite to study S-2026-04 — not confirmed"))
        let held = try ledger(dir)
        #expect(!held.isEmpty && held.allSatisfy { $0["state"] as? String == "held" })
        #expect(!FileManager.default.fileExists(atPath: dir.sub("out") + "/invitations"))
        #expect(sim.sim.webhookDeliveries(name: "invites").accepted.isEmpty)
        let unconfirmed = try activation(dir)
        #expect(unconfirmed["standing"] as? String == "unconfirmed" && unconfirmed["held"] as? Int == held.count)
        #expect((unconfirmed["webhooks"] as? [Any])?.isEmpty == true)
        let typo = try cdfsync(["invitations", "research-panle", "--state-dir", dir.sub("state")])
        #expect(typo.stdout.contains("no invitations of pipeline research-panle in")
            && typo.stdout.contains("(pipelines with an activation there: research-panel)"), "\(typo.output)")
        let statusText = try cdfsync(["status", "--state-dir", dir.sub("state")]).stdout
        #expect(statusText.contains("research-panel  invite to study S-2026-04: NOT CONFIRMED"), "\(statusText)")

        // 2. Asked without a terminal: refused, nothing changes.
        let refused = try cdfsync(["pipeline", "activate", file], stdin: "y\n")
        #expect(refused.status == 1 && refused.output.contains("pass --yes"), "\(refused.output)")
        #expect(try activation(dir)["standing"] as? String == "unconfirmed")

        // 3. Confirmed with --yes: the preview, then who confirmed; held ones still eligible are released.
        let confirmed = try cdfsync(["pipeline", "activate", file, "--yes"])
        #expect(confirmed.succeeded, "\(confirmed.output)")
        #expect(confirmed.stdout.contains("activation of pipeline research-panel: invite to study S-2026-04"))
        #expect(confirmed.stdout.contains("would be invited now"))
        #expect(confirmed.stdout.contains("the source now (all "))
        #expect(confirmed.stdout.contains("confirmed by "))
        let standing = try activation(dir)
        #expect(standing["standing"] as? String == "confirmed" && standing["held"] as? Int == 0)
        #expect(standing["queued"] as? Int ?? 0 > 0)
        let released = standing["queued"] as! Int

        // 4. The next sync sends them: files, webhook, run record.
        let second = try cdfsync(["sync", file])
        #expect(second.succeeded, "\(second.output)")
        #expect(second.stdout.contains("sent         \(released)"), "\(second.stdout)")
        let lines = try invitationLines(dir)
        #expect(lines.count == released)
        #expect(Set(lines.map { $0["participant_id"] as! Int }).count == released)
        let accepted = sim.sim.webhookDeliveries(name: "invites").accepted
        #expect(accepted.count == released)
        #expect(Set(accepted.compactMap(\.idempotencyKey)) == Set(lines.map { $0["idempotency_key"] as! String }))
        for line in lines {
            let pid = UInt64(line["participant_id"] as! Int)
            #expect(line["idempotency_key"] as? String
                == Invitations.idempotencyKey(pipeline: "research-panel", participantID: pid, target: "study:S-2026-04"))
            #expect(["GB", "IE"].contains((line["record"] as? [String: Any])?["country"] as? String ?? ""))
        }
        let show = try cdfsync(["runs", "show", "2", "--state-dir", dir.sub("state"), "--json"])
        let invitations = try #require(try json(show.stdout)["invitations"] as? [String: Any])
        #expect(invitations["sent"] as? Int == released && invitations["webhook_sent"] as? Int == released)
        #expect(invitations["standing"] as? String == "confirmed")
        #expect(try cdfsync(["runs", "show", "2", "--state-dir", dir.sub("state")]).stdout.contains("webhook_sent     \(released)"))
        let afterSend = try cdfsync(["status", "--state-dir", dir.sub("state")]).stdout
        #expect(afterSend.contains("files in \(PanelStore.absolute(dir.sub("out") + "/invitations")): intact, nothing to repair"),
            "\(afterSend)")
        #expect(afterSend.contains("last run 2: 0 queued, 0 held, \(released) sent"), "\(afterSend)")
        #expect(afterSend.contains("acknowledged through invitation \(released), 0 delivered not yet acknowledged"),
            "\(afterSend)")
        let hooks = try #require(try activation(dir)["webhooks"] as? [[String: Any]])
        #expect(hooks.count == 1 && hooks.first?["acknowledged"] as? Int == released && hooks.first?["behind"] as? Int == 0)

        // 5. A replay re-applies the history: nothing is invited twice.
        let replay = try cdfsync(["replay", file, "--from-version", "0"])
        #expect(replay.succeeded, "\(replay.output)")
        #expect(try invitationLines(dir).count == released)
        // So does a full refresh.
        let refresh = try cdfsync(["refresh", file])
        #expect(refresh.succeeded, "\(refresh.output)")
        #expect(try invitationLines(dir).count == released)

        // 6. A new eligible participant is invited by the next sync.
        let row = #"["P-900001","Nia","Okafor","nia.okafor@example.com","+44 20 7946 0001","Acme","United Kingdom","London","Engineer","smb","opted_in","2026-04-01T10:00:00.000Z"]"#
        try insert(sim, row)
        let third = try cdfsync(["sync", file])
        #expect(third.stdout.contains("queued       1"), "\(third.stdout)")
        #expect(try invitationLines(dir).contains { $0["external_id"] as? String == "P-900001" })

        // 7. The settings change: the confirmation is stale; runs import and hold.
        try Data(yaml(port: sim.port, dir: dir, countries: "[GB, IE, DE]").utf8).write(to: URL(fileURLWithPath: file))
        let row2 = #"["P-900002","Ola","Berg","ola.berg@example.com","+44 20 7946 0002","Acme","GB","London","Engineer","smb","opted_in","2026-04-01T10:00:00.000Z"]"#
        try insert(sim, row2)
        let stale = try cdfsync(["sync", file])
        #expect(stale.stdout.contains("(stale)") && stale.stdout.contains("held         1"), "\(stale.stdout)")
        #expect(try activation(dir)["standing"] as? String == "stale")
        #expect(try cdfsync(["status", "--state-dir", dir.sub("state")]).stdout.contains("is STALE"))
        let before = try invitationLines(dir).count
        #expect(try cdfsync(["pipeline", "activate", file, "--yes", "--sample-rows", "0"]).stdout.contains("released 1"))
        #expect(try cdfsync(["sync", file]).succeeded)
        #expect(try invitationLines(dir).count == before + 1)

        // 8. Deactivated: nothing more goes out.
        let stop = try cdfsync(["pipeline", "deactivate", file])
        #expect(stop.succeeded && stop.stdout.contains("stopped"), "\(stop.output)")
        let row3 = #"["P-900003","Ana","Lind","ana.lind@example.com","+44 20 7946 0003","Acme","GB","London","Engineer","smb","opted_in","2026-04-01T10:00:00.000Z"]"#
        try insert(sim, row3)
        #expect(try cdfsync(["sync", file]).stdout.contains("(deactivated)"))
        #expect(try invitationLines(dir).count == before + 1)
        #expect(try activation(dir)["standing"] as? String == "deactivated")
        let text = try cdfsync(["invitations", file]).stdout
        #expect(text.contains("held      study:S-2026-04") && text.contains("entries:"), "\(text)")
        #expect(Set(try ledger(dir).compactMap { $0["participant_id"] as? Int }).count == (try ledger(dir)).count)
    }

    @Test func aBadActivationIsRefusedNamingTheField() throws {
        let dir = TempDir("activation-bad")
        let file = dir.sub("p.yaml")
        try Data("""
            name: p
            connection: {warehouse_id: w}
            source: main.research.participants
            mapping: {external_id: participant_id, email: email}
            activation:
              invite_study: S-1
              invite_tsk: T-1
              eligibility: [{field: shoe_size, op: eq, value: 42}]
              webhook: {url: "http://example.com/hook"}
            """.utf8).write(to: URL(fileURLWithPath: file))
        let r = try cdfsync(["pipeline", "validate", file, "--offline"])
        #expect(r.status == 1)
        #expect(r.output.contains("activation.invite_tsk: unknown field (did you mean invite_task?)"), "\(r.output)")
        #expect(r.output.contains("activation.eligibility[0].field: 'shoe_size' is not a panel field"), "\(r.output)")
        #expect(r.output.contains("activation.webhook.url:"), "\(r.output)")
        let word = dir.sub("w.yaml")
        try Data("name: p\nconnection: c\nsource: a.b.c\nmapping: {external_id: x}\nactivation: invite\n".utf8)
            .write(to: URL(fileURLWithPath: word))
        let w = try cdfsync(["pipeline", "validate", word, "--offline"])
        #expect(w.status == 1 && w.output.contains("'invite' is not an activation"), "\(w.output)")
        let plain = dir.sub("i.yaml")
        try Data("name: p\nconnection: c\nsource: a.b.c\nmapping: {external_id: x}\nactivation: import\n".utf8)
            .write(to: URL(fileURLWithPath: plain))
        let importOnly = try cdfsync(["pipeline", "activate", plain, "--yes", "--state-dir", dir.sub("state")])
        #expect(importOnly.status == 1 && importOnly.output.contains("has no activation to confirm"), "\(importOnly.output)")
    }
}
