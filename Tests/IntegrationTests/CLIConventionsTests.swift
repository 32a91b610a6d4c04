import CDFSyncTestSupport
import Foundation
import Testing

/// `~/.databrickscfg` profiles, read by the built binary from a temporary HOME, against the simulator: the DEFAULT
/// profile, `--profile`, `DATABRICKS_CONFIG_PROFILE`, `DATABRICKS_CONFIG_FILE`, and the environment winning over
/// the profile as in the Databricks SDKs.
@Suite("CLI: Databricks configuration profiles")
struct ProfileCLITests {
    func home(_ h: SimHarness) throws -> TempDir {
        let dir = TempDir("profiles")
        try """
            [DEFAULT]
            host = \(h.host)
            token = dapi-good
            warehouse_id = \(runningWarehouse)

            [sp]
            host = \(h.host)
            client_id = sp-client
            client_secret = sp-secret
            warehouse_id = \(runningWarehouse)

            [wrong]
            host = \(h.host)
            token = dapi-wrong-token
            http_path = /sql/1.0/warehouses/\(runningWarehouse)
            """.write(toFile: dir.sub(".databrickscfg"), atomically: true, encoding: .utf8)
        return dir
    }

    @Test func profilesGiveHostCredentialAndWarehouse() throws {
        let h = try SimHarness()
        let dir = try home(h)
        let env = ["HOME": dir.path]

        let byDefault = try runCLI(["connection", "test"], env: env)
        #expect(byDefault.status == 0 && byDefault.stdout.contains("all checks passed"), "\(byDefault.all)")

        let sp = try runCLI(["connection", "test", "--profile", "sp"], env: env)
        #expect(sp.status == 0, "\(sp.all)")
        let spByEnv = try runCLI(["connection", "test"], env: env.merging(["DATABRICKS_CONFIG_PROFILE": "sp"]) { $1 })
        #expect(spByEnv.status == 0, "\(spByEnv.all)")

        let wrong = try runCLI(["connection", "test", "--profile", "wrong"], env: env)
        #expect(wrong.status == 1 && wrong.stdout.contains("✗ authenticated"), "\(wrong.all)")
        // The environment wins over the profile, key by key: the token from the environment, the rest from it.
        let fixed = try runCLI(["connection", "test", "--profile", "wrong"],
            env: env.merging(["DATABRICKS_TOKEN": "dapi-good"]) { $1 })
        #expect(fixed.status == 0, "\(fixed.all)")

        let missing = try runCLI(["connection", "test", "--profile", "nope"], env: env)
        #expect(missing.status == 1, "\(missing.all)")
        #expect(missing.stderr.contains("~/.databrickscfg has no nope profile") && missing.stderr.contains("DEFAULT, sp, wrong"),
            "\(missing.stderr)")

        for r in [byDefault, sp, spByEnv, wrong, fixed, missing] {
            #expect(!r.all.contains("sp-secret") && !r.all.contains("dapi-wrong-token") && !r.all.contains("dapi-good"))
        }
    }

    @Test func theConfigFileVariableAndTheSDKRules() throws {
        let h = try SimHarness()
        let dir = try home(h)
        try FileManager.default.moveItem(atPath: dir.sub(".databrickscfg"), toPath: dir.sub("team.cfg"))
        let env = ["HOME": dir.path, "DATABRICKS_CONFIG_FILE": dir.sub("team.cfg")]
        let sp = try runCLI(["connection", "test", "--profile", "sp"], env: env)
        #expect(sp.status == 0, "\(sp.all)")

        // A token in the environment and a client in the profile: two methods, refused as the SDKs refuse them.
        let both = try runCLI(["connection", "test", "--profile", "sp"],
            env: env.merging(["DATABRICKS_TOKEN": "dapi-good"]) { $1 })
        #expect(both.status == 1 && both.stderr.contains("more than one authorization method configured"), "\(both.all)")
        let picked = try runCLI(["connection", "test", "--profile", "sp"],
            env: env.merging(["DATABRICKS_TOKEN": "dapi-good", "DATABRICKS_AUTH_TYPE": "pat"]) { $1 })
        #expect(picked.status == 0, "\(picked.all)")

        // No profile named and a host in the environment: the file is not read (no credential then).
        let skipped = try runCLI(["connection", "test"],
            env: ["HOME": dir.path, "DATABRICKS_CONFIG_FILE": dir.sub("team.cfg"), "DATABRICKS_HOST": h.host,
                  "DATABRICKS_WAREHOUSE_ID": runningWarehouse])
        #expect(skipped.status == 1 && skipped.stderr.contains("no credential found"), "\(skipped.all)")

        // A saved connection and a profile at once are refused.
        let mixed = try runCLI(["connection", "test", "--connection", "x", "--profile", "sp"], env: env)
        #expect(mixed.status == 1 && mixed.stderr.contains("a saved connection and --profile were both given"), "\(mixed.all)")
    }
}

/// Every `--json` prints one JSON document on stdout (nothing else there), with the shape docs/cli.md gives.
@Suite("CLI: --json shapes")
struct JSONShapeCLITests {
    static let table = ["--table", "main.research.participants", "--key", "participant_id"]

    /// stdout as one JSON object; fails the test when it is not exactly one.
    func object(_ r: CLIResult) throws -> [String: Any] {
        let parsed = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        return try #require(parsed as? [String: Any], "stdout is not one JSON object: \(r.stdout)\n\(r.stderr)")
    }

    @Test func syncReplayRunsStatusPrintOneObjectEach() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("json-shapes")
        let env = ["DATABRICKS_TOKEN": "dapi-demo-token"]
        let conn = ["--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70", "--state-dir", dir.sub("state"),
                    "--output-dir", dir.sub("out")]

        let sync = try runCLI(["sync"] + Self.table + conn + ["--json"], env: env)
        #expect(sync.status == 0, "\(sync.all)")
        let record = try object(sync)
        #expect(record["status"] as? String == "succeeded" && record["run_id"] as? Int == 1)
        #expect((record["counts"] as? [String: Any])?["inserted"] as? Int == 355, "\(record)")
        #expect(!sync.stdout.contains("sync of "), "no text summary with --json")

        let replay = try runCLI(["replay"] + Self.table + conn + ["--from-version", "1", "--dry-run", "--json"], env: env)
        #expect(replay.status == 0, "\(replay.all)")
        #expect(try object(replay)["mode"] as? String == "replay (dry run)")

        let runs = try runCLI(["runs", "--json", "--state-dir", dir.sub("state")], env: [:])
        let list = try object(runs)
        #expect(list["state_dir"] as? String == dir.sub("state"))
        #expect((list["runs"] as? [[String: Any]])?.map { $0["run_id"] as? Int } == [2, 1], "\(list)")

        let show = try runCLI(["runs", "show", "1", "--json", "--state-dir", dir.sub("state")], env: [:])
        #expect(try object(show)["run_id"] as? Int == 1)

        let status = try runCLI(["status", "--json", "--state-dir", dir.sub("state")], env: [:])
        #expect(try object(status)["pipelines"] is [Any])

        // A failed run: its record is still the document, status failed, and the exit status 1.
        let failed = try runCLI(["sync", "--table", "main.research.no_such_table", "--key", "participant_id"] + conn
            + ["--json"], env: env)
        #expect(failed.status == 1, "\(failed.all)")
        let failure = try object(failed)
        #expect(failure["status"] as? String == "failed" && failure["error"] is String, "\(failure)")
        #expect(failed.stderr.contains("error: "), "the error still goes to stderr")
    }

    /// A stream: `schedule --json` prints each run's record on its own line, and nothing else on stdout.
    @Test func scheduleJSONIsOneRecordPerLine() throws {
        let sim = try RunningSimulator()
        let dir = TempDir("json-schedule")
        var files: [String] = []
        for (name, source) in [("good", "main.research.participants"), ("broken", "main.research.no_such_table")] {
            let path = dir.sub("\(name).yaml")
            try """
                name: \(name)
                connection: {warehouse_id: 8a1c2f3d4e5b6a70}
                source: \(source)
                mapping: {external_id: participant_id, email: email}
                sinks: [{type: ndjson, directory: \(dir.sub("out-\(name)"))}]
                schedule: 15m
                """.write(toFile: path, atomically: true, encoding: .utf8)
            files.append(path)
        }
        let r = try runCLI(["schedule"] + files + ["--once", "--json", "--host", sim.baseURL, "--state-dir", dir.sub("state")],
            env: ["DATABRICKS_TOKEN": "dapi-demo-token"])
        #expect(r.status == 1, "one run failed: \(r.all)")
        let records = r.stdout.split(separator: "\n").map {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(records.count == 2 && records.allSatisfy { $0 != nil }, "\(r.stdout)")
        #expect(records.compactMap { $0?["pipeline"] as? String } == ["good", "broken"], "\(r.stdout)")
        #expect(records.compactMap { $0?["status"] as? String } == ["succeeded", "failed"], "\(r.stdout)")
        #expect(r.stderr.contains("running good") && r.stderr.contains("1 of 2 pipeline run(s) failed"), "\(r.stderr)")
    }

    @Test func connectionTestAndPipelineValidatePrintOneObjectEach() throws {
        let h = try SimHarness()
        let env = ["DATABRICKS_TOKEN": "dapi-good"]
        let ok = try runCLI(["connection", "test", "--host", h.host, "--warehouse-id", runningWarehouse, "--json"], env: env)
        #expect(ok.status == 0, "\(ok.all)")
        let report = try object(ok)
        #expect(report["passed"] as? Bool == true && report["failure"] is NSNull)
        #expect((report["checks"] as? [[String: Any]])?.count == 5)
        let bad = try runCLI(["connection", "test", "--host", h.host, "--warehouse-id", runningWarehouse, "--json"],
            env: ["DATABRICKS_TOKEN": "dapi-nope"])
        #expect(bad.status == 1, "\(bad.all)")
        let failure = try #require(try object(bad)["failure"] as? [String: Any])
        #expect(failure["category"] as? String == "authentication failed" && failure["remedy"] is String, "\(failure)")

        let dir = TempDir("json-validate")
        let offline = try runCLI(["pipeline", "validate", fixturePath("pipeline-example.yaml"), "--offline", "--json",
                                  "--state-dir", dir.sub("state")], env: [:])
        #expect(offline.status == 0, "\(offline.all)")
        let v = try object(offline)
        #expect(v["valid"] as? Bool == true && v["findings"] is NSNull && v["pipeline"] is String, "\(v)")
    }
}
