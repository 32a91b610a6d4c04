import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncTestSupport
import Foundation
import Testing

@testable import CDFSyncService

/// The calls behind the console over real HTTP: a saved connection whose secret never comes back, its test, a
/// pipeline drafted from suggestions (type checks, preview, saved as a file, run), a replay dry run, a file edit.
@Suite("serve: console API")
struct ConsoleAPITests {
    func body(_ r: (status: Int, headers: [String: String], body: String)) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any], "\(r.body)")
    }

    func post(_ live: LiveServer, _ path: String, _ json: [String: Any], method: HTTPRequest.Method = .post)
        async throws -> (status: Int, headers: [String: String], body: String)
    {
        let text = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
        return try await live.request(method, path, headers: [("Content-Type", "application/json")], body: text)
    }

    @Test func connectionsKeepTheirSecretWriteOnlyAndTestStepByStep() async throws {
        let f = try ServeFixture(pipelines: [:])
        let live = try await LiveServer(f.server)
        let secret = "dapi-demo-token"
        let added = try await post(live, "/api/connections", [
            "name": "sim", "host": f.sim.baseURL, "warehouse_id": "8a1c2f3d4e5b6a70", "secret": secret,
        ])
        #expect(added.status == 201, "\(added.body)")
        #expect(!added.body.contains(secret))
        let list = try await live.request(.get, "/api/connections")
        #expect(!list.body.contains(secret), "the secret never comes back")
        let connections = try #require(try body(list)["connections"] as? [[String: Any]])
        #expect(connections.count == 1)
        #expect(connections[0]["secret"] as? [String: String] == ["kind": "stored"])
        #expect(connections[0]["pipelines"] as? [String] == [])

        for bad: [String: Any] in [
            ["name": "x", "host": f.sim.baseURL, "warehouse_id": "8a1c2f3d4e5b6a70"],
            ["name": "x", "host": f.sim.baseURL, "warehouse_id": "8a1c2f3d4e5b6a70", "secret": "a", "secret_env": "B"],
            ["name": "sim", "host": f.sim.baseURL, "warehouse_id": "8a1c2f3d4e5b6a70", "secret": "again"],
        ] {
            let r = try await post(live, "/api/connections", bad)
            #expect((400..<500).contains(r.status), "\(bad): \(r.status) \(r.body)")
            #expect(try body(r)["remedy"] is String)
        }

        let test = try body(try await live.request(.post, "/api/connections/sim/test"))
        #expect(test["passed"] as? Bool == true, "\(test)")
        let steps = try #require(test["steps"] as? [[String: Any]])
        #expect(steps.map { $0["step"] as? String } == ConnectionCheck.Step.allCases.map(\.rawValue))
        #expect(test["failure"] is NSNull)

        // A wrong secret: the step that fails says so, with its remedy, and the rest did not run.
        _ = try await post(live, "/api/connections", [
            "name": "wrong", "host": f.sim.baseURL, "warehouse_id": "8a1c2f3d4e5b6a70", "secret": "dapi-wrong",
        ])
        let failed = try body(try await live.request(.post, "/api/connections/wrong/test"))
        #expect(failed["passed"] as? Bool == false)
        let failure = try #require(failed["failure"] as? [String: Any])
        #expect(failure["category"] as? String == "authentication failed", "\(failure)")
        #expect((failure["remedy"] as? String)?.isEmpty == false)
        #expect((failed["remaining"] as? [String])?.contains("SELECT 1") == true)

        let tree = try await live.request(.get, "/api/connections/sim/discovery?catalog=main")
        #expect(tree.status == 200)
        #expect(tree.body.contains("\"participants\"") && tree.body.contains("\"change_data_feed\":true"))
        try await live.stop()
    }

    @Test func aPipelineFromSuggestionsIsCheckedPreviewedSavedAndRuns() async throws {
        let f = try ServeFixture(pipelines: [:])
        let live = try await LiveServer(f.server)
        _ = try await post(live, "/api/connections", [
            "name": "sim", "host": f.sim.baseURL, "warehouse_id": "8a1c2f3d4e5b6a70", "secret": "dapi-demo-token",
        ])
        let draftResponse = try await post(live, "/api/drafts",
            ["connection": "sim", "source": "main.research.participants"])
        #expect(draftResponse.status == 201, "\(draftResponse.body)")
        let draft = try body(draftResponse)
        let id = try #require(draft["id"] as? String)
        let fields = try #require(draft["fields"] as? [[String: Any]])
        let key = try #require(fields.first { $0["field"] as? String == "external_id" })
        #expect(key["column"] as? String == "participant_id", "\(key)")
        #expect((draft["columns"] as? [[String: Any]])?.isEmpty == false)

        let edited = try body(try await post(live, "/api/drafts/\(id)",
            ["name": "from-console", "schedule": "daily", "mapping": ["city": ""]], method: .put))
        let yaml = try #require(edited["yaml"] as? String)
        #expect(yaml.contains("name: from-console") && yaml.contains("schedule: daily"), "\(yaml)")
        #expect(yaml.contains("connection: sim"))
        #expect(yaml.contains("directory: \"\(f.dir.sub("out/from-console"))\""), "beside the state directory: \(yaml)")

        let check = try body(try await live.request(.post, "/api/drafts/\(id)/check"))
        #expect(check["ok"] as? Bool == true, "\(check)")
        let preview = try body(try await live.request(.post, "/api/drafts/\(id)/preview"))
        let rows = try #require(preview["rows"] as? [[String: Any]])
        #expect(rows.count == 20)
        #expect(rows.contains { $0["outcome"] as? String == "participant" })

        let saved = try await post(live, "/api/drafts/\(id)/save", [:])
        #expect(saved.status == 201, "\(saved.body)")
        let file = f.dir.sub("pipelines/from-console.yaml")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == yaml, "the file is the draft's text")
        let again = try await post(live, "/api/drafts/\(id)/save", [:])
        #expect(again.status == 409, "an existing file is not overwritten unless asked")

        // The saved pipeline is one of the service's now, runs through the saved connection, and shows it uses it.
        #expect(try await live.request(.post, "/api/pipelines/from-console/run").status == 202)
        let view = try await live.waitForRunEnd("from-console")
        #expect((view["last_outcome"] as? [String: Any])?["result"] as? String == "succeeded", "\(view)")
        #expect(view["schedule"] as? String == "daily")
        let connections = try body(try await live.request(.get, "/api/connections"))
        #expect(((connections["connections"] as? [[String: Any]])?.first?["pipelines"] as? [String]) == ["from-console"])

        // Replay: a dry run writes only its record and says what it would change.
        let dry = try body(try await post(live, "/api/pipelines/from-console/replay",
            ["from_version": 0, "dry_run": true]))
        #expect(dry["mode"] as? String == "replay (dry run)", "\(dry)")
        #expect(dry["status"] as? String == "succeeded")
        let counts = try #require(dry["counts"] as? [String: Int])
        #expect(counts["read"]! > 0 && counts["skipped_older"]! > 0,
            "the versions applied already are older than what the panel holds: \(counts)")
        #expect(dry["checkpoint_version"] as? Int == (view["checkpoint"] as? [String: Any])?["version"] as? Int,
            "a replay never moves the checkpoint")
        let real = try body(try await post(live, "/api/pipelines/from-console/replay",
            ["from_version": 0, "dry_run": false]))
        #expect(real["mode"] as? String == "replay" && real["status"] as? String == "succeeded", "\(real)")
        let bad = try await post(live, "/api/pipelines/from-console/replay", ["from_version": 5, "to_version": 2,
            "dry_run": true])
        #expect(bad.status == 400)

        // The file through the API: read, refused when it renames the pipeline, written when it loads.
        let text = try #require(try body(try await live.request(.get, "/api/pipelines/from-console/file"))["yaml"] as? String)
        let renamed = try await post(live, "/api/pipelines/from-console/file",
            ["yaml": text.replacingOccurrences(of: "name: from-console", with: "name: other")], method: .put)
        #expect(renamed.status == 422, "\(renamed.body)")
        let hourly = try await post(live, "/api/pipelines/from-console/file",
            ["yaml": text.replacingOccurrences(of: "schedule: daily", with: "schedule: hourly")], method: .put)
        #expect(hourly.status == 200, "\(hourly.body)")
        #expect(try await live.json("/api/pipelines/from-console")["schedule"] as? String == "hourly")

        let conflicts = try body(try await live.request(.get, "/api/conflicts"))
        #expect((conflicts["state_dirs"] as? [[String: Any]])?.isEmpty == false)
        try await live.stop()
    }
}
