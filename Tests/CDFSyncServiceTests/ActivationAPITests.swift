import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

@testable import CDFSyncService

/// The console's activation calls over real HTTP against the simulator: the preview is the one `cdfsync pipeline
/// activate` prints (the built command, run on the same state), a confirmation releases what runs held and the next
/// run sends it, a deactivation makes runs hold again; the ledger pages; cross-site calls are refused.
@Suite("serve: activation API")
struct ActivationAPITests {
    static let table = "main.research.participants"

    func activationYAML(_ dir: TempDir) -> String {
        pipelineYAML(dir: dir) + """
            activation:
              invite_study: S-2026-04
              eligibility:
                - {field: country, op: in, value: [GB, IE]}

            """
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    func post(_ live: LiveServer, _ path: String, _ json: [String: Any]? = nil, headers: [(String, String)] = [])
        async throws -> (status: Int, body: [String: Any])
    {
        let text = try json.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        let r = try await live.request(.post, path,
            headers: headers + (text == nil ? [] : [("Content-Type", "application/json")]), body: text)
        return (r.status, try object(r.body))
    }

    func lastRunID(_ live: LiveServer) async throws -> Int {
        let p = try await live.json("/api/pipelines/panel")
        return (p["last_outcome"] as? [String: Any])?["run_id"] as? Int ?? 0
    }

    func runNow(_ live: LiveServer) async throws {
        let before = try await lastRunID(live)
        let r = try await live.request(.post, "/api/pipelines/panel/run")
        #expect(r.status == 202, "\(r.body)")
        let p = try await live.waitForRunEnd("panel", runsBefore: before)
        #expect((p["last_outcome"] as? [String: Any])?["result"] as? String == "succeeded", "\(p)")
    }

    /// What `cdfsync pipeline activate` prints before it asks (it then refuses: its standard input is no terminal).
    func cliPreview(_ f: ServeFixture, sampleRows: Int) throws -> String {
        let r = try ChildProcess.run(try BuiltProduct.cdfsync.path,
            ["pipeline", "activate", f.dir.sub("pipelines/panel.yaml"), "--sample-rows", String(sampleRows)],
            environment: ["DATABRICKS_HOST": f.sim.baseURL, "DATABRICKS_TOKEN": "dapi-demo-token",
                "PATH": "/usr/bin:/bin", "USER": "tester"],
            stdin: "", mergeOutput: false)
        #expect(r.status == 1 && r.stderr.contains("pass --yes"), "\(r.output)")
        return r.stdout
    }

    @Test func previewConfirmRunDeactivateAndTheLedger() async throws {
        let f = try ServeFixture(pipelines: [:])
        try activationYAML(f.dir).write(toFile: f.dir.sub("pipelines/panel.yaml"), atomically: true, encoding: .utf8)
        let live = try await LiveServer(f.server)

        // No run yet: nothing held, the source judged; the numbers are the CLI's.
        let fresh = try await live.json("/api/pipelines/panel/activation?sample_rows=1000")
        #expect((fresh["standing"] as? [String: Any])?["state"] as? String == "unconfirmed")
        #expect((fresh["held"] as? [String: Any])?["would_send"] as? Int == 0)
        let freshSource = try #require(fresh["source"] as? [String: Any])
        #expect(freshSource["would_invite"] as? Int ?? 0 > 0, "\(freshSource)")
        #expect(freshSource["excluded"] as? Int ?? 0 > 0, "the demo has people outside GB and IE")
        #expect(try cliPreview(f, sampleRows: 1000) == (fresh["text"] as? String ?? "") + "\n")

        // A run imports and holds every invitation.
        try await runNow(live)
        let heldPage = try object(try await live.request(.get, "/api/pipelines/panel/invitations?limit=5").body)
        let heldCount = try #require((heldPage["counts"] as? [String: Int])?["held"])
        #expect(heldCount > 5 && heldPage["total"] as? Int == heldCount)
        #expect((heldPage["invitations"] as? [[String: Any]])?.count == 5)
        let second = try object(try await live.request(.get, "/api/pipelines/panel/invitations?limit=5&offset=5").body)
        let ids = { (page: [String: Any]) in ((page["invitations"] as? [[String: Any]]) ?? []).map { $0["participant_id"] as? Int } }
        #expect(Set(ids(heldPage)).isDisjoint(with: ids(second)), "pages do not overlap")

        let preview = try await live.json("/api/pipelines/panel/activation?sample_rows=1000")
        let held = try #require(preview["held"] as? [String: Any])
        // Held entries whose participant withdrew later in the same run (the demo's P-000338 opts out at v6) are
        // excluded, not sent (docs/activation.md): the rest is what confirming releases.
        let wouldSend = try #require(held["would_send"] as? Int)
        #expect(wouldSend + (held["excluded"] as? Int ?? -1) == heldCount && wouldSend > 5, "\(held)")
        #expect(try cliPreview(f, sampleRows: 1000) == (preview["text"] as? String ?? "") + "\n")
        let hash = try #require(preview["settings_hash"] as? String)
        #expect(hash == (try PipelineLoader.load(path: f.dir.sub("pipelines/panel.yaml"))).activationSettingsHash)

        // Refused: from another site, without the previewed hash, with another hash.
        let crossSite = try await live.request(.post, "/api/pipelines/panel/activation/confirm",
            headers: [("Sec-Fetch-Site", "cross-site"), ("Content-Type", "application/json")],
            body: #"{"settings_hash":"\#(hash)"}"#)
        #expect(crossSite.status == 403, "\(crossSite.body)")
        #expect(try await post(live, "/api/pipelines/panel/activation/confirm", [:]).status == 400)
        let other = try await post(live, "/api/pipelines/panel/activation/confirm", ["settings_hash": "00"])
        #expect(other.status == 409 && other.body["remedy"] is String, "\(other.body)")
        #expect(try await lastStanding(live) == "unconfirmed")

        // Confirmed: who (the serve process's user, from the console), the held ones released; the next run sends them.
        let confirmed = try await post(live, "/api/pipelines/panel/activation/confirm", ["settings_hash": hash])
        #expect(confirmed.status == 200, "\(confirmed.body)")
        let standing = try #require(confirmed.body["standing"] as? [String: Any])
        #expect(standing["state"] as? String == "confirmed" && standing["by"] as? String == operatorName() + " (console)")
        #expect(standing["settings_hash"] as? String == hash && standing["at"] is String)
        #expect(confirmed.body["released"] as? Int == wouldSend)
        try await runNow(live)
        let sent = try object(try await live.request(.get, "/api/pipelines/panel/invitations?state=sent&limit=10000").body)
        #expect(sent["total"] as? Int == wouldSend, "\(sent["counts"] ?? "")")
        #expect((sent["invitations"] as? [[String: Any]])?.allSatisfy {
            $0["state"] as? String == "sent" && $0["file"] is String && $0["target"] as? String == "study:S-2026-04"
        } == true)
        let files = try FileManager.default.contentsOfDirectory(atPath: f.dir.sub("out-panel/invitations"))
        #expect(files.contains { $0.hasSuffix(".ndjson.zst") }, "\(files)")
        #expect(try await lastStanding(live) == "confirmed")

        // Deactivated: a new eligible participant is imported and held, not sent.
        let off = try await post(live, "/api/pipelines/panel/activation/deactivate")
        #expect(off.status == 200 && (off.body["standing"] as? [String: Any])?["state"] as? String == "deactivated",
            "\(off.body)")
        #expect((off.body["standing"] as? [String: Any])?["by"] as? String == operatorName() + " (console)")
        let next = (f.sim.sim.latestVersion(table: Self.table) ?? 0) + 1
        try f.sim.sim.appendCommit(table: Self.table, Commit.decode(Data(#"""
            {"version": \#(next), "timestamp": "\#(String(format: "2026-05-%02dT10:00:00.000Z", next))", "operation": "WRITE", "insert": [["P-900001","Nia","Okafor","nia.okafor@example.com","+44 20 7946 0001","Acme","GB","London","Engineer","smb","opted_in","2026-04-01T10:00:00.000Z"]]}
            """#.utf8)))
        try await runNow(live)
        let after = try object(try await live.request(.get, "/api/pipelines/panel/invitations?state=held").body)
        #expect((after["invitations"] as? [[String: Any]])?.map { $0["external_id"] as? String } == ["P-900001"],
            "\(after)")
        #expect((after["counts"] as? [String: Int])?["sent"] == wouldSend, "nothing more was sent")
        let again = try await live.json("/api/pipelines/panel/activation?sample_rows=0")
        #expect(again["source"] is NSNull && (again["held"] as? [String: Any])?["would_send"] as? Int == 1)
        #expect((again["standing"] as? [String: Any])?["state"] as? String == "deactivated")
        try await live.stop()
    }

    func lastStanding(_ live: LiveServer) async throws -> String? {
        let p = try await live.json("/api/pipelines/panel/activation?sample_rows=0")
        return (p["standing"] as? [String: Any])?["state"] as? String
    }

    @Test func anImportPipelineHasNoActivationAndBadQueriesAreNamed() async throws {
        let f = try ServeFixture()
        let live = try await LiveServer(f.server)
        let none = try await live.request(.get, "/api/pipelines/panel/activation")
        #expect(none.status == 422 && none.body.contains("has no activation"), "\(none.body)")
        #expect(try await post(live, "/api/pipelines/panel/activation/confirm", ["settings_hash": "x"]).status == 422)
        #expect(try await live.request(.get, "/api/pipelines/nope/activation").status == 404)
        #expect(try await live.request(.get, "/api/pipelines/panel/activation?sample_rows=20000").status == 400)
        #expect(try await live.request(.get, "/api/pipelines/panel/invitations?state=maybe").status == 400)
        let empty = try object(try await live.request(.get, "/api/pipelines/panel/invitations").body)
        #expect(empty["total"] as? Int == 0 && (empty["invitations"] as? [Any])?.isEmpty == true)
        try await live.stop()
    }
}
