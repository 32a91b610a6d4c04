import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// A workspace whose participants come from a join: `people` (CDF on) and their latest consent in `consents`.
enum JoinWorkspace {
    static let warehouse = "8a1c2f3d4e5b6a70"

    /// Person `i`'s row in `main.crm.people` as the workspace has it at version 0 (person 7's email is invalid).
    static func personRow(_ i: Int) -> String {
        let day = String(format: "%02d", 1 + i % 27)
        let email = i == 7 ? "not-an-email" : "p\(i)@example.com"
        return #"["\#(i)", "\#(email)", "DE", "2026-01-\#(day)T10:00:00.000Z"]"#
    }

    /// Person `i`'s row in `main.crm.consents` (every fifth has opted out).
    static func consentRow(_ i: Int) -> String { #"["\#(i)", "\#(i % 5 == 0 ? "Opted Out" : "Opted In")"]"# }

    static func json(people: Int = 40) -> String {
        let rows = (1...people).map(personRow)
        let consents = (1...people).map(consentRow)
        return #"""
        {"format": "cdfsync-sim/1",
         "warehouses": [{"id": "\#(warehouse)", "name": "WH", "state": "RUNNING"}],
         "principals": [
           {"name": "sync-bot", "tokens": ["dapi-demo-token"], "warehouses": {"\#(warehouse)": "CAN_USE"},
            "grants": [{"on": "main", "privileges": ["USE CATALOG"]},
                       {"on": "main.crm", "privileges": ["USE SCHEMA", "SELECT"]}]},
           {"name": "narrow", "tokens": ["dapi-narrow"], "warehouses": {"\#(warehouse)": "CAN_USE"},
            "grants": [{"on": "main", "privileges": ["USE CATALOG"]},
                       {"on": "main.crm", "privileges": ["USE SCHEMA"]},
                       {"on": "main.crm.people", "privileges": ["SELECT"]}]}],
         "tables": [
           {"name": "main.crm.people",
            "columns": [{"name": "person_id", "type": "STRING"}, {"name": "email", "type": "STRING"},
                        {"name": "country", "type": "STRING"}, {"name": "updated_at", "type": "TIMESTAMP"}],
            "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE",
                         "set_properties": {"delta.enableChangeDataFeed": "true"},
                         "insert": [\#(rows.joined(separator: ","))]}]},
           {"name": "main.crm.consents",
            "columns": [{"name": "person_id", "type": "STRING"}, {"name": "status", "type": "STRING"}],
            "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE",
                         "insert": [\#(consents.joined(separator: ","))]}]}
         ]}
        """#
    }

    static let joinSQL =
        "SELECT p.person_id AS id, p.email, p.country, p.updated_at, c.status FROM main.crm.people p "
        + "JOIN main.crm.consents c ON c.person_id = p.person_id"

    /// A pipeline over the join, in `mode`, with a page size for watermark reads.
    static func yaml(mode: String, sql: String = joinSQL, pageSize: Int = 7, extra: String = "") -> String {
        """
        name: joined
        connection: {warehouse_id: \(warehouse)}
        source:
          sql: "\(sql)"
        mode: \(mode)
        mapping: {external_id: id, email: email, country: country, consent_status: status, last_updated: updated_at}
        consent: {opted_in: [Opted In]}
        watermark: {page_size: \(pageSize)}
        \(extra)
        """
    }
}

/// Custom SQL sources end to end over loopback (issue 26 §3): the pipeline file, `pipeline validate`, every run's
/// guard and column check, watermark and snapshot syncs of a join, `pipeline test-sql`.
@Suite("Custom SQL sources")
struct CustomSQLSourceTests {
    func sync(_ sim: RunningSimulator, _ p: Pipeline, dir: TempDir, token: String = "dapi-demo-token") throws -> SyncSummary {
        let store = try PanelStore(directory: dir.sub("state"))
        let client = StatementClient(settings: try sim.settings(token: token))
        client.retryPolicy.baseDelay = 0.01
        return try CDFSync(client: client, store: store, options: try SyncOptions(pipeline: p, outputDirectory: dir.sub("out"))).run()
    }

    /// What the join returns, as the panel must hold it: opted-in people with a valid email, by id.
    static func expectedIDs(people: Int = 40) -> Set<String> {
        Set((1...people).filter { $0 % 5 != 0 && $0 != 7 }.map(String.init))
    }

    func panelIDs(_ dir: TempDir) throws -> Set<String> { Set(try panelContents(dir.sub("state")).keys) }

    /// Runs the built `cdfsync` with the simulator's host and warehouse (no state or output flags).
    func cli(_ args: [String], _ sim: RunningSimulator, token: String = "dapi-demo-token") throws
        -> (status: Int32, output: String)
    {
        try runProcess(try BuiltProduct.cdfsync.path,
            args + ["--host", "http://127.0.0.1:\(sim.port)", "--warehouse-id", JoinWorkspace.warehouse],
            environment: ["DATABRICKS_TOKEN": token, "PATH": "/usr/bin:/bin"])
    }

    @Test func theFileTakesSQLForWatermarkAndSnapshotAndRefusesCDF() throws {
        let w = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "watermark"))
        #expect(w.hasCustomSQL && w.source == Pipeline.customSQLSourceLabel && w.sourceSQL == JoinWorkspace.joinSQL)
        #expect(try w.guardedSQL()?.text == JoinWorkspace.joinSQL)
        _ = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot"))
        _ = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "auto"))
        let cdf = #expect(throws: SyncError.self) { try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "cdf")) }
        #expect(cdf?.message.contains("mode: cdf needs a table's change data feed, and a custom SQL source has none") == true)
        let start = #expect(throws: SyncError.self) {
            try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot", extra: "start: latest"))
        }
        #expect(start?.message.contains("start: applies to a table's change data") == true)
        // Unknown keys under source: are refused like anywhere else.
        let typo = #expect(throws: SyncError.self) {
            try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot").replacingOccurrences(of: "  sql:", with: "  sqll:"))
        }
        #expect(typo?.message.contains("sqll") == true)
    }

    @Test func theGuardRefusesAtLoadNamingTheTokenAndItsPlace() throws {
        let e = #expect(throws: SyncError.self) {
            try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot", sql: "SELECT id FROM t; DROP TABLE t"))
        }
        // The file's line of source.sql, then the guard's own line and column inside the query.
        #expect(e?.message.contains("line 4, column 8: source.sql: custom SQL refused at line 1, column 17 (';')") == true,
            "\(e?.message ?? "")")
        let multi = #expect(throws: SyncError.self) {
            try PipelineLoader.load(yaml: """
                name: joined
                connection: {warehouse_id: w}
                source:
                  sql: |
                    SELECT id
                    FROM t
                    WHERE x = 1 OR /* */ read_files('/etc') IS NULL
                mode: snapshot
                mapping: {external_id: id}
                """)
        }
        #expect(multi?.message.contains("custom SQL refused at line 3, column 22 ('read_files'): the function read_files is not allowed") == true,
            "\(multi?.message ?? "")")
        // Every run guards the text again: options made from a pipeline value that skipped the loader.
        var p = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot"))
        p.sourceSQL = "SELECT 1; DELETE FROM main.crm.people"
        let run = #expect(throws: SyncError.self) { try SyncOptions(pipeline: p) }
        #expect(run?.message.hasPrefix("source.sql: custom SQL refused at line 1, column 9 (';')") == true)
    }

    @Test func watermarkSyncOfAJoinReadsEveryRowOnceAndContinues() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "watermark", pageSize: 7))
        let first = try sync(sim, p, dir: dir)
        #expect(first.mode == .watermark)
        #expect(first.table == "custom SQL")
        #expect(first.rowsRead == 40)
        #expect(first.invalid == 1)
        #expect(first.consentBlocked == 8)
        #expect(first.statementIDs.count >= 6, "pages of 7 rows")
        #expect(try panelIDs(dir) == Self.expectedIDs())
        #expect(first.watermark == "2026-01-27T10:00:00.000Z" || first.watermark?.hasPrefix("2026-01-27T10:00:00") == true)
        // Nothing new: the next run reads nothing past the watermark.
        let second = try sync(sim, p, dir: dir)
        #expect(second.rowsRead == 0)
        // A later change in one of the joined tables comes through the query.
        try sim.sim.appendCommit(table: "main.crm.people", Commit.decode(Data(#"""
            {"version": 1, "timestamp": "2026-02-01T00:00:00.000Z", "operation": "WRITE",
             "insert": [["41", "new@example.com", "FR", "2026-02-01T09:00:00.000Z"]]}
            """#.utf8)))
        try sim.sim.appendCommit(table: "main.crm.consents", Commit.decode(Data(#"""
            {"version": 1, "timestamp": "2026-02-01T00:00:00.000Z", "operation": "WRITE", "insert": [["41", "Opted In"]]}
            """#.utf8)))
        let third = try sync(sim, p, dir: dir)
        #expect(third.rowsRead == 1 && third.inserted == 1)
        #expect(try panelIDs(dir) == Self.expectedIDs().union(["41"]))
    }

    @Test func snapshotSyncOfAJoinReadsTheWholeQueryEachRun() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot"))
        let first = try sync(sim, p, dir: dir)
        #expect(first.mode == .snapshot)
        #expect(first.rowsRead == 40 && first.inserted == 31)
        #expect(try panelIDs(dir) == Self.expectedIDs())
        let again = try sync(sim, p, dir: dir)
        #expect(again.rowsRead == 40 && again.inserted == 0 && again.updated == 0)
        // Records carry the mapped fields of the join (the consent from the second table).
        let r = try #require(try PanelStore(directory: dir.sub("state")).record(externalID: "3", scope: "joined"))
        let obj = try JSONSerialization.jsonObject(with: Data(r.record)) as! [String: Any]
        #expect(obj["email"] as? String == "p3@example.com")
        #expect(obj["consent_status"] as? String == "Opted In")
    }

    @Test func everyRunChecksTheColumnsThroughTheWrappedQuery() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        // A mapped column the query does not return, and a cursor that is not a time.
        let missing = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "watermark").replacingOccurrences(
            of: "country: country", with: "country: land"))
        let e = #expect(throws: SyncFailure.self) { try sync(sim, missing, dir: dir) }
        #expect("\(e?.underlying ?? SyncError("", remedy: ""))".contains(
            "mapping.country: column 'land' is not in the query's output (columns: id, email, country, updated_at, status)"))
        #expect(try PanelStore(directory: dir.sub("state")).checkpoint(pipeline: "joined") == nil)
        let cursor = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "watermark",
            sql: "SELECT p.person_id AS id, p.email, p.country, p.updated_at, c.status, 1 AS n FROM main.crm.people p JOIN main.crm.consents c ON c.person_id = p.person_id",
            extra: "").replacingOccurrences(of: "watermark: {page_size: 7}", with: "watermark: {column: n, page_size: 7}"))
        let c = #expect(throws: SyncFailure.self) { try sync(sim, cursor, dir: TempDir()) }
        #expect("\(c?.underlying ?? SyncError("", remedy: ""))".contains("watermark.column: column 'n' is INT; expected TIMESTAMP or DATE"))
        // Two columns of one name (a join's) cannot be named by the wrapper: said before reading.
        let twice = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot",
            sql: "SELECT p.person_id AS id, p.email, p.country, p.updated_at, c.status, c.person_id AS id FROM main.crm.people p JOIN main.crm.consents c ON c.person_id = p.person_id"))
        let t = #expect(throws: SyncFailure.self) { try sync(sim, twice, dir: TempDir()) }
        #expect("\(t?.underlying ?? SyncError("", remedy: ""))".contains("the query returns 2 columns named 'id'"))
    }

    @Test func validateTestSQLAndSyncFromTheCLI() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let file = dir.sub("p.yaml")
        try JoinWorkspace.yaml(mode: "auto").write(toFile: file, atomically: true, encoding: .utf8)
        let valid = try cli(["pipeline", "validate", file, "--state-dir", dir.sub("state")], sim)
        #expect(valid.status == 0, "\(valid.output)")
        #expect(valid.output.contains("✓ source.sql: one read-only SELECT; it returns 5 column(s): id STRING, email STRING, country STRING, updated_at TIMESTAMP, status STRING"))
        #expect(valid.output.contains("✓ mode: auto → watermark (custom SQL has no change data; a cursor column is mapped)"))
        #expect(valid.output.contains("✓ mapping.email: email (STRING)"))
        #expect(valid.output.contains("pipeline is valid"))

        let test = try cli(["pipeline", "test-sql", file, "--limit", "3"], sim)
        #expect(test.status == 0, "\(test.output)")
        #expect(test.output.contains("query      SELECT * FROM ("))
        #expect(test.output.contains(") AS src LIMIT :n"))
        #expect(test.output.contains("  :n = '3'"))
        #expect(test.output.contains("coverage   6 of 6 column(s) the pipeline reads are there"))
        #expect(test.output.contains("  ✓ mapping.last_updated: updated_at (TIMESTAMP)"))
        #expect(test.output.contains("1. participant "))

        let json = try cli(["pipeline", "test-sql", file, "--limit", "2", "--json"], sim)
        #expect(json.status == 0, "\(json.output)")
        let obj = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as! [String: Any]
        #expect(obj["covered"] as? Bool == true)
        #expect(obj["mode"] as? String == "watermark")
        #expect((obj["columns"] as? [[String: Any]])?.map { $0["name"] as! String } == ["id", "email", "country", "updated_at", "status"])
        #expect((obj["rows"] as? [[String: Any]])?.count == 2)
        #expect((obj["parameters"] as? [String: Any])?["n"] as? String == "2")

        // preview runs the sync's own statement around the query, the page size a bound parameter too.
        let preview = try cli(["pipeline", "preview", file, "--limit", "2"], sim)
        #expect(preview.status == 0, "\(preview.output)")
        #expect(preview.output.contains("query      SELECT `id`, `email`, `country`, `status`, `updated_at` FROM ("),
            "\(preview.output)")
        #expect(preview.output.contains(") AS src LIMIT :n") && preview.output.contains("  :n = '2'"))
        #expect(preview.output.contains("1. participant "))

        // A mapping the query does not cover: test-sql says which and exits 1; validate fails the same field.
        try JoinWorkspace.yaml(mode: "snapshot").replacingOccurrences(of: "country: country", with: "country: land")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try cli(["pipeline", "test-sql", file], sim)
        #expect(bad.status == 1)
        #expect(bad.output.contains("✗ mapping.country: column 'land' is not in the query's output"))
        #expect(bad.output.contains("rows       not mapped: mapping.country: column 'land' is not in custom SQL"))
        let invalid = try cli(["pipeline", "validate", file, "--state-dir", dir.sub("state")], sim)
        #expect(invalid.status == 1)
        #expect(invalid.output.contains("✗ mapping.country: column 'land' is not in the query's output"))

        // A hostile text is refused before anything is sent, with the token and its place.
        try JoinWorkspace.yaml(mode: "snapshot", sql: "SELECT * FROM main.crm.people /* ok */; DROP TABLE main.crm.people")
            .write(toFile: file, atomically: true, encoding: .utf8)
        for command in [["pipeline", "validate", file, "--offline"], ["pipeline", "test-sql", file],
                        ["sync", file, "--state-dir", dir.sub("state")]] {
            let r = try cli(command, sim)
            #expect(r.status == 1, "\(command)")
            #expect(r.output.contains("custom SQL refused at line"), "\(command): \(r.output)")
        }

        // A principal without SELECT on one of the joined tables: the warehouse's error, through the wrapper.
        try JoinWorkspace.yaml(mode: "snapshot").write(toFile: file, atomically: true, encoding: .utf8)
        let narrow = try cli(["pipeline", "validate", file, "--state-dir", dir.sub("state")], sim, token: "dapi-narrow")
        #expect(narrow.status == 1)
        #expect(narrow.output.contains("✗ source.sql: the warehouse cannot run the query"), "\(narrow.output)")
        #expect(narrow.output.contains("INSUFFICIENT_PERMISSIONS"), "\(narrow.output)")

        // And the sync itself, from the CLI.
        let synced = try runCLI(["sync", file], port: sim.port, dir: dir)
        #expect(synced.status == 0, "\(synced.output)")
        #expect(synced.output.contains("sync of custom SQL [snapshot]"), "\(synced.output)")
        #expect(try panelIDs(dir) == Self.expectedIDs())
    }

    @Test func replayIsRefusedForCustomSQL() throws {
        let sim = try RunningSimulator(workspaceJSON: JoinWorkspace.json())
        let dir = TempDir()
        let p = try PipelineLoader.load(yaml: JoinWorkspace.yaml(mode: "snapshot"))
        let store = try PanelStore(directory: dir.sub("state"))
        let s = CDFSync(client: StatementClient(settings: try sim.settings()), store: store,
            options: try SyncOptions(pipeline: p, outputDirectory: dir.sub("out")))
        let e = #expect(throws: SyncError.self) { try s.replay(ReplayOptions(fromVersion: 0)) }
        #expect(e?.remedy.contains("cdfsync refresh") == true)
        #expect(try store.runs(limit: 5).isEmpty)
    }
}
