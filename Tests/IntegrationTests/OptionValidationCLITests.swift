import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Numeric options that make no sense are refused before anything runs, naming the option and the value; and a
/// replay that fails says the checkpoint did not move (a replay never moves it), not a made-up range.
@Suite("CLI: option values and replay failures")
struct OptionValidationCLITests {
    static let table = "main.research.participants"

    @Test(arguments: [
        (["sync", "--batch-size", "0"], "--batch-size must be at least 1 row; got 0"),
        (["sync", "--in-flight", "0"], "--in-flight must be at least 1 chunk; got 0"),
        (["sync", "--max-versions-per-statement", "0"], "--max-versions-per-statement must be at least 1; got 0"),
        (["sync", "--start-version=-3"], "--start-version must be 0 or more"),
        (["sync", "--connect-timeout=-1"], "--connect-timeout must be a positive number of seconds; got -1.0"),
        (["sync", "--request-timeout", "0"], "--request-timeout must be a positive number of seconds; got 0.0"),
        (["replay", "--from-version=-2"], "--from-version must be 0 or more"),
        (["replay", "--from-version", "4", "--to-version", "2"], "--to-version (2) must not be below --from-version (4)"),
    ])
    func aMeaninglessValueIsRefusedNamingTheOption(args: [String], message: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let r = try runCLI(args + ["--table", Self.table], port: sim.port, dir: dir)
        #expect(r.status == 64, "\(r.output)")
        #expect(r.output.contains(message), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.sub("state")), "nothing was opened for a refused option")
    }

    @Test func theTimeoutsAreCheckedForEveryCommandThatConnects() throws {
        let r = try runProcess(try BuiltProduct.cdfsync.path, ["discover", "--host", "http://127.0.0.1:9", "--warehouse-id", "x",
                                                         "--request-timeout", "nan"],
            environment: ["DATABRICKS_TOKEN": "t", "PATH": "/usr/bin:/bin"])
        #expect(r.status == 64 && r.output.contains("--request-timeout must be a positive number of seconds"), "\(r.output)")
    }

    @Test(arguments: [["runs"], ["runs", "show", "1"], ["panel", "export"]])
    func readingCommandsOnAStateDirectoryNoSyncWroteSaySoAndCreateNothing(args: [String]) throws {
        let dir = TempDir()
        let missing = dir.sub("typo")
        let r = try runProcess(try BuiltProduct.cdfsync.path, args + ["--state-dir", missing], environment: ["PATH": "/usr/bin:/bin"])
        #expect(r.status != 0)
        #expect(r.output.contains("no cdfsync state in \(missing)") && r.output.contains("--state-dir"), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    @Test func aFailedReplaySaysTheCheckpointStayedWhereItWas() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let sync = try runCLI(["sync", "--table", Self.table], port: sim.port, dir: dir)
        try #require(sync.status == 0, "\(sync.output)")
        // Every statement submitted from now on is refused (a permission error is not retried).
        sim.sim.addFault(Fault(
            match: Fault.Match(method: "POST", pathPrefix: "/api/2.0/sql/statements"), count: nil, kind: .status,
            status: 403, message: "User does not have SELECT on table."))
        let replay = try runCLI(["replay", "--table", Self.table, "--from-version", "3"], port: sim.port, dir: dir)
        #expect(replay.status != 0)
        #expect(replay.output.contains("checkpoint unchanged at v6 (a replay never moves it); nothing was applied"),
            "\(replay.output)")
        #expect(!replay.output.contains("moved"), "\(replay.output)")
    }
}

/// `cdfsync schedule --once` (what cron or CI runs): every pipeline once, and an exit status that says whether all
/// of them succeeded.
@Suite("CLI: schedule --once")
struct ScheduleOnceCLITests {
    func pipeline(_ dir: TempDir, name: String, source: String) throws -> String {
        let path = dir.sub("\(name).yaml")
        try """
            name: \(name)
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: \(source)
            mapping: {external_id: participant_id, email: email}
            sinks: [{type: ndjson, directory: \(dir.sub("out-\(name)"))}]
            schedule: 15m
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func schedule(_ sim: RunningSimulator, _ dir: TempDir, _ files: [String]) throws -> (status: Int32, output: String) {
        try runProcess(try BuiltProduct.cdfsync.path,
            ["schedule"] + files + ["--once", "--host", sim.baseURL, "--state-dir", dir.sub("state")],
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"])
    }

    @Test func aFailedPipelineMakesTheExitStatusNonZeroAndTheOthersStillRun() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let good = try pipeline(dir, name: "good", source: "main.research.participants")
        let broken = try pipeline(dir, name: "broken", source: "main.research.no_such_table")
        let mixed = try schedule(sim, dir, [broken, good])
        #expect(mixed.status == 1, "\(mixed.output)")
        #expect(mixed.output.contains("running good") && mixed.output.contains("inserted"), "\(mixed.output)")
        #expect(mixed.output.contains("1 of 2 pipeline run(s) failed: broken"), "\(mixed.output)")
        #expect(!mixed.output.contains("retrying at the next boundary"), "\(mixed.output)")

        let fine = try schedule(sim, dir, [good])
        #expect(fine.status == 0, "\(fine.output)")
        #expect(fine.output.contains("no new commits"), "\(fine.output)")
    }
}

/// `cdfsync status`: where each pipeline of a state directory stands, read from the store alone.
@Suite("CLI: status")
struct StatusCLITests {
    @Test func statusShowsEachPipelinesCheckpointLastRunAndWhatIsUndelivered() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        func write(_ name: String, source: String, hook: Bool) throws -> String {
            let path = dir.sub("\(name).yaml")
            let sinks = "[{type: ndjson, directory: \(dir.sub("out"))}"
                + (hook ? ", {type: webhook, url: \"\(sim.baseURL)/_hook/\(name)\", batch_size: 100}]" : "]")
            try """
                name: \(name)
                connection: {warehouse_id: 8a1c2f3d4e5b6a70}
                source: \(source)
                mapping: {external_id: participant_id, email: email}
                sinks: \(sinks)
                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        func cli(_ args: [String]) throws -> (status: Int32, output: String) {
            try runProcess(try BuiltProduct.cdfsync.path, args + ["--state-dir", dir.sub("state")],
                environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL, "PATH": "/usr/bin:/bin"])
        }
        let good = try cli(["sync", try write("hooked", source: "main.research.participants", hook: true)])
        try #require(good.status == 0, "\(good.output)")
        let broken = try cli(["sync", try write("broken", source: "main.research.gone", hook: false)])
        #expect(broken.status != 0)

        let text = try cli(["status"])
        #expect(text.status == 0, "\(text.output)")
        let lines = text.output.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("panel ") && $0.contains("352 participant(s), 355 source key(s) (3 linked") },
            "\(text.output)")
        #expect(lines.contains { $0.hasPrefix("outbox ") && $0.contains("364 delivered") && $0.contains("0 waiting") },
            "\(text.output)")
        #expect(lines.contains { $0.hasPrefix("  broken  no checkpoint") && $0.contains("last run 2 failed") }, "\(text.output)")
        #expect(lines.contains { $0.contains("error: table not found") }, "\(text.output)")
        #expect(lines.contains {
            $0.hasPrefix("  hooked  checkpoint v6 (source created 2026-03-01T08:00:00.000Z)") && $0.contains("last run 1 succeeded")
        }, "\(text.output)")
        #expect(lines.contains { $0 == "  sink of hooked  acknowledged through change 364, 0 delivered change(s) not yet acknowledged" },
            "\(text.output)")

        let json = try cli(["status", "--json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        #expect(obj["participants"] as? Int == 352 && obj["delivered_sequence"] as? Int == 364 && obj["pending_delivery"] as? Int == 0)
        let pipelines = try #require(obj["pipelines"] as? [[String: Any]])
        #expect(pipelines.map { $0["name"] as? String } == ["broken", "hooked"])
        #expect(pipelines[1]["checkpoint_version"] as? Int == 6 && pipelines[1]["last_run_status"] as? String == "succeeded")
        #expect(pipelines[0]["checkpoint_version"] is NSNull && pipelines[0]["last_run_status"] as? String == "failed")
        #expect((obj["webhooks"] as? [[String: Any]])?.first?["acknowledged_sequence"] as? Int == 364)
    }
}

/// `cdfsync pipeline preview`: the query the pipeline builds and its first rows as the sync would map them.
@Suite("CLI: pipeline preview")
struct PreviewCLITests {
    @Test func previewPrintsTheQueryItsBoundValuesAndMappedRows() throws {
        let sim = try RunningSimulator()
        func cli(_ args: [String]) throws -> (status: Int32, output: String) {
            try runProcess(try BuiltProduct.cdfsync.path, ["pipeline", "preview", fixturePath("pipeline-example.yaml")] + args,
                environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL, "PATH": "/usr/bin:/bin"])
        }
        let text = try cli(["--limit", "3"])
        #expect(text.status == 0, "\(text.output)")
        let lines = text.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("query      SELECT `participant_id`, ") == true, "\(text.output)")
        #expect(lines.first?.hasSuffix("FROM `main`.`research`.`participants` WHERE (`country` NOT IN (:f0_0)) LIMIT 3") == true,
            "\(text.output)")
        #expect(lines.contains("  :f0_0 = 'KP'"), "\(text.output)")
        #expect(lines.contains { $0.hasPrefix("statement  ") && $0.hasSuffix(", 3 row(s)") }, "\(text.output)")
        #expect(lines.filter { $0.hasPrefix("1. ") || $0.hasPrefix("2. ") || $0.hasPrefix("3. ") }.count == 3, "\(text.output)")

        let json = try cli(["--limit", "2", "--json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        #expect((obj["parameters"] as? [String: String]) == ["f0_0": "KP"])
        let rows = try #require(obj["rows"] as? [[String: Any]])
        #expect(rows.count == 2 && rows.allSatisfy { $0["outcome"] is String && $0["record"] != nil })

        let bad = try cli(["--limit", "5000"])
        #expect(bad.status == 64 && bad.output.contains("--limit must be 1…1000"), "\(bad.output)")
    }

    @Test func validatingAPipelineLeavesNoStateStoreBehind() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let r = try runProcess(try BuiltProduct.cdfsync.path,
            ["pipeline", "validate", fixturePath("pipeline-example.yaml"), "--state-dir", dir.sub("state")],
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL, "PATH": "/usr/bin:/bin"])
        #expect(r.status == 0 && r.output.contains("pipeline is valid"), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.sub("state")))
    }
}
