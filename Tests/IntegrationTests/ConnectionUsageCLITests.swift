import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Runs the built `cdfsync` in `directory` (so `.cdfsync/state` is under it) with a clean environment plus `env`.
func runCLI(in directory: String, _ args: [String], env: [String: String]) throws -> CLIResult {
    var environment = ["PATH": "/usr/bin:/bin", "HOME": directory]
    environment.merge(env) { $1 }
    let r = try ChildProcess.run(try BuiltProduct.cdfsync.path, args, environment: environment, directory: directory,
        stdin: "", mergeOutput: false)
    return CLIResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
}

/// Issue 26 §5: which pipelines use a saved connection, and what removing it does to them — through the built
/// binary, against the simulator.
@Suite("Connections and the pipelines that use them (built binary, simulator)")
struct ConnectionUsageCLITests {
    static func pipeline(_ name: String, connection: String, stateDir: String? = nil) -> String {
        """
        name: \(name)
        connection: \(connection)
        source: main.research.participants
        mapping: {external_id: participant_id, email: email, phone: phone, first_name: first_name,
                  consent_status: consent_status}
        consent: {opted_in: [opted_in]}
        validation: {required: [external_id], default_phone_region: GB, max_invalid_ratio: 1.0}
        schedule: daily
        """ + (stateDir.map { "\nstate_dir: \($0)\n" } ?? "\n")
    }

    @Test func listCountsPipelinesAndRemoveRefusesThenStopsThem() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("conn-usage")
        let env = ["CDFSYNC_CONFIG_DIR": dir.sub("config"), "SIM_TOKEN": "dapi-demo-token"]
        func cli(_ args: [String]) throws -> CLIResult { try runCLI(in: dir.path, args, env: env) }
        for name in ["sim", "other"] {
            let add = try cli(["connection", "add", name, "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70",
                "--token-env", "SIM_TOKEN"])
            #expect(add.status == 0, "\(add.all)")
        }
        // a and b share the default state directory and the connection sim; c uses it from another state
        // directory; d has inline settings (no saved connection, counted nowhere).
        let s2 = dir.sub("s2")
        let files: [(String, String)] = [
            ("a", Self.pipeline("a", connection: "sim")), ("b", Self.pipeline("b", connection: "sim")),
            ("c", Self.pipeline("c", connection: "sim", stateDir: s2)),
            ("d", Self.pipeline("d", connection: "{host: \"\(sim.baseURL)\", warehouse_id: 8a1c2f3d4e5b6a70, token_env: SIM_TOKEN}",
                stateDir: s2)),
        ]
        for (name, yaml) in files {
            try yaml.write(toFile: dir.sub("\(name).yaml"), atomically: true, encoding: .utf8)
            let sync = try cli(["sync", "\(name).yaml"])
            #expect(sync.status == 0, "\(name): \(sync.all)")
        }

        // The default state directory: a and b.
        let list = try cli(["connection", "list"])
        #expect(list.status == 0, "\(list.all)")
        let simLine = try #require(list.stdout.split(separator: "\n").first { $0.hasPrefix("sim ") })
        #expect(simLine.split(separator: " ", omittingEmptySubsequences: true)[1] == "2", "\(list.stdout)")
        #expect(list.stdout.split(separator: "\n").first!.contains("PIPELINES"))
        // Both directories: three pipelines on sim, none on other; d (inline settings) is not counted.
        let json = try cli(["connection", "list", "--json", "--state-dir", ".cdfsync/state", "--state-dir", s2])
        #expect(json.status == 0, "\(json.all)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let connections = try #require(root["connections"] as? [[String: Any]])
        let simEntry = try #require(connections.first { $0["name"] as? String == "sim" })
        #expect(simEntry["pipeline_count"] as? Int == 3)
        let names = (simEntry["pipelines"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted()
        #expect(names == ["a", "b", "c"])
        #expect(connections.first { $0["name"] as? String == "other" }?["pipeline_count"] as? Int == 0)
        #expect((root["removed"] as? [Any])?.isEmpty == true)

        // Removing a connection in use is refused, naming its pipelines; nothing changes.
        let refused = try cli(["connection", "remove", "sim", "--state-dir", ".cdfsync/state", "--state-dir", s2])
        #expect(refused.status == 1, "\(refused.all)")
        #expect(refused.stderr.contains("connection 'sim' is used by 3 pipeline(s): a (.cdfsync/state), b (.cdfsync/state), c ("),
            "\(refused.stderr)")
        #expect(refused.stderr.contains("--force"))
        #expect(try cli(["connection", "list"]).stdout.contains("\nsim "))
        // One not in use goes without --force.
        #expect(try cli(["connection", "remove", "other"]).status == 0)

        let forced = try cli(["connection", "remove", "sim", "--force", "--state-dir", ".cdfsync/state", "--state-dir", s2])
        #expect(forced.status == 0, "\(forced.all)")
        #expect(forced.stdout.contains("removed connection 'sim'"))
        #expect(forced.stdout.contains("3 pipeline(s) used it and now stop (connection sim was removed)"), "\(forced.stdout)")

        // sync of such a pipeline: skipped, exit 1, nothing recorded.
        let runsBefore = try runCount(cli(["runs", "a", "--json"]).stdout)
        let skipped = try cli(["sync", "a.yaml"])
        #expect(skipped.status == 1, "\(skipped.all)")
        #expect(skipped.stderr.contains("pipeline a skipped: connection sim was removed ("), "\(skipped.stderr)")
        #expect(try runCount(try cli(["runs", "a", "--json"]).stdout) == runsBefore)

        // schedule: skips c, runs d (another state directory, inline settings), exits 1 naming c.
        let schedule = try cli(["schedule", "--once", "c.yaml", "d.yaml"])
        #expect(schedule.status == 1, "\(schedule.all)")
        #expect(schedule.stdout.contains("running c\n  skipped: connection sim was removed ("), "\(schedule.stdout)")
        #expect(schedule.stdout.contains("running d\n"), "\(schedule.stdout)")
        #expect(schedule.stderr.contains("1 of 2 pipeline(s) skipped, their connection was removed: c"), "\(schedule.stderr)")
        #expect(!schedule.stderr.contains("failed"), "\(schedule.stderr)")
        let dRuns = try cli(["runs", "d", "--state-dir", s2, "--json"])
        #expect(try runCount(dRuns.stdout) == 2, "d ran twice: \(dRuns.stdout)")

        // status says so, per pipeline.
        let status = try cli(["status"])
        #expect(status.status == 0, "\(status.all)")
        for p in ["a", "b"] {
            let block = status.stdout.components(separatedBy: "\n  \(p)  ").dropFirst().first ?? ""
            #expect(block.contains("stopped: connection sim was removed ("), "\(p): \(status.stdout)")
        }
        let statusJSON = try cli(["status", "--json", "--state-dir", s2])
        let s = try #require(try JSONSerialization.jsonObject(with: Data(statusJSON.stdout.utf8)) as? [String: Any])
        let pipelines = try #require(s["pipelines"] as? [[String: Any]])
        let c = try #require(pipelines.first { $0["name"] as? String == "c" })
        #expect(c["connection"] as? String == "sim")
        #expect((c["connection_problem"] as? String)?.hasPrefix("connection sim was removed (") == true)
        let d = try #require(pipelines.first { $0["name"] as? String == "d" })
        #expect(d["connection"] is NSNull && d["connection_problem"] is NSNull)

        // connection list names the removed connection its pipelines still use.
        let after = try cli(["connection", "list", "--state-dir", ".cdfsync/state", "--state-dir", s2])
        #expect(after.stdout.contains("removed connection sim ("), "\(after.stdout)")
        #expect(after.stdout.contains("is still named by 3 pipeline(s), which do not run: a (.cdfsync/state)"))

        // Added again: the pipelines run again, and status no longer says they stopped.
        #expect(try cli(["connection", "add", "sim", "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70",
            "--token-env", "SIM_TOKEN"]).status == 0)
        let again = try cli(["sync", "a.yaml"])
        #expect(again.status == 0, "\(again.all)")
        #expect(!(try cli(["status"])).stdout.contains("stopped:"))
    }
}

/// Issue 26 §6: `cdfsync conflicts`, and the field-by-field record of a participant two source keys feed, through
/// the built binary against the simulator.
@Suite("Identity conflicts and linked records (built binary, simulator)")
struct ConflictsCLITests {
    static let table = #"""
        {"name": "main.research.people", "table_type": "MANAGED",
         "columns": [{"name": "participant_id", "type": "STRING"}, {"name": "first_name", "type": "STRING"},
                     {"name": "email", "type": "STRING"}, {"name": "phone", "type": "STRING"},
                     {"name": "consent_status", "type": "STRING"}],
         "commits": [
           {"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE",
            "set_properties": {"delta.enableChangeDataFeed": "true"}},
           {"version": 1, "timestamp": "2026-01-02T00:00:00.000Z", "operation": "WRITE", "insert": [
             ["K1", "Ann", "a@x.io", "+14155550101", "opted_in"], ["K2", "Bob", "b@x.io", null, "opted_in"]]},
           {"version": 2, "timestamp": "2026-01-03T00:00:00.000Z", "operation": "WRITE", "insert": [
             ["K3", null, "a@x.io", null, "opted_in"]]},
           {"version": 3, "timestamp": "2026-01-04T00:00:00.000Z", "operation": "MERGE", "update": [
             {"before": ["K2", "Bob", "b@x.io", null, "opted_in"], "after": ["K2", "Bob", "a@x.io", null, "opted_in"]}]},
           {"version": 4, "timestamp": "2026-01-05T00:00:00.000Z", "operation": "MERGE", "update": [
             {"before": ["K3", null, "a@x.io", null, "opted_in"], "after": ["K3", null, "a@x.io", null, "opted_out"]}]},
           {"version": 5, "timestamp": "2026-01-06T00:00:00.000Z", "operation": "MERGE", "update": [
             {"before": ["K1", "Ann", "a@x.io", "+14155550101", "opted_in"],
              "after": ["K1", "Anne", "a@x.io", "+14155550101", "opted_in"]}]}
         ]}
        """#

    @Test func conflictsAreListedWithKeysValuesAndWhatWasKept() throws {
        let sim = try RunningSimulator()
        try sim.sim.addTable(JSONDecoder().decode(Table.self, from: Data(Self.table.utf8)))
        let dir = TempDir("conflicts")
        let env = ["SIM_TOKEN": "dapi-demo-token"]
        func cli(_ args: [String]) throws -> CLIResult { try runCLI(in: dir.path, args, env: env) }
        try """
            name: people
            connection: {host: "\(sim.baseURL)", warehouse_id: 8a1c2f3d4e5b6a70, token_env: SIM_TOKEN}
            source: main.research.people
            mapping: {external_id: participant_id, first_name: first_name, email: email, phone: phone,
                      consent_status: consent_status}
            consent: {opted_in: [opted_in]}
            state_dir: state
            """.write(toFile: dir.sub("p.yaml"), atomically: true, encoding: .utf8)
        let sync = try cli(["sync", "p.yaml"])
        #expect(sync.status == 0, "\(sync.all)")

        // K3 linked to K1's participant: the record merges field by field; K3's withdrawal wins over K1's newer
        // opt-in; K2's claim on a@x.io is a conflict, not a merge.
        let export = try cli(["panel", "export", "--state-dir", "state"])
        let records = try export.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(records.count == 2)
        let p1 = try #require(records.first { $0["external_id"] as? String == "K1" })
        let r1 = try #require(p1["record"] as? [String: Any])
        #expect(r1["external_id"] as? String == "K1" && r1["first_name"] as? String == "Anne")
        #expect(r1["phone"] as? String == "+14155550101" && r1["email"] as? String == "a@x.io")
        #expect(r1["contactable"] as? Bool == false && r1["consent_status"] as? String == "opted_out", "\(r1)")
        #expect((p1["source_keys"] as? [[String: Any]])?.count == 2)

        let text = try cli(["conflicts", "p.yaml"])
        #expect(text.status == 0, "\(text.all)")
        #expect(text.stdout.hasPrefix("1 identity conflict(s) of pipeline people in "), "\(text.stdout)")
        #expect(text.stdout.contains("conflict 1  email a@x.io  seen 20"), "\(text.stdout)")
        #expect(text.stdout.contains("pipeline people, commit version 3"))
        #expect(text.stdout.contains("row       key people/K2 of participant 2 (keys people/K2)"))
        #expect(text.stdout.contains("owner     participant 1 (keys people/K1, people/K3) has a@x.io"))
        #expect(text.stdout.contains("kept      a@x.io stays with participant 1; participant 2 keeps b@x.io for matching"))

        let json = try cli(["conflicts", "state", "--json"])
        #expect(json.status == 0, "\(json.all)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(root["format"] as? String == "cdfsync-conflicts/1" && root["pipeline"] is NSNull)
        let c = try #require((root["conflicts"] as? [[String: Any]])?.first)
        #expect(c["field"] as? String == "email" && c["value"] as? String == "a@x.io")
        #expect(c["external_id"] as? String == "K2" && c["commit_version"] as? Int == 3)
        #expect(c["participant_keys"] as? [String] == ["people/K2"])
        #expect(c["owner_keys"] as? [String] == ["people/K1", "people/K3"])
        let kept = try #require(c["kept"] as? [String: Any])
        #expect(kept["value_stays_with"] as? Int == 1 && kept["participant_keeps"] as? String == "b@x.io")
        let seen = try #require(c["seen_at"] as? String)
        #expect(ISO8601DateFormatter().date(from: seen) != nil, "\(seen)")

        // By name in --state-dir; another pipeline's name lists none; a directory without a store is an error.
        #expect(try cli(["conflicts", "people", "--state-dir", "state"]).stdout.contains("conflict 1  email"))
        let none = try cli(["conflicts", "nobody", "--state-dir", "state"])
        #expect(none.status == 0 && none.stdout.hasPrefix("no identity conflicts of pipeline nobody"), "\(none.all)")
        #expect(none.stdout.contains("(pipelines there: people)"), "\(none.all)")
        let noRuns = try cli(["runs", "nobody", "--state-dir", "state"])
        #expect(noRuns.status == 0 && noRuns.stdout.hasPrefix("no runs of pipeline nobody recorded in state")
            && noRuns.stdout.contains("(pipelines with runs there: people)"), "\(noRuns.all)")
        let missing = try cli(["conflicts", "--state-dir", "nowhere"])
        #expect(missing.status == 1 && missing.stderr.contains("no cdfsync state in nowhere"), "\(missing.all)")
        // status counts it.
        #expect(try cli(["status", "--state-dir", "state"]).stdout.contains("1 conflict(s)"))
    }
}

/// The number of runs in `runs --json`'s object (`{"state_dir": …, "runs": [...]}`).
func runCount(_ json: String) throws -> Int {
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
    return try #require(object["runs"] as? [Any], "\(json)").count
}
