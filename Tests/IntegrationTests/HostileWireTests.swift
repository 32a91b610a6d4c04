import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Design §2.8: bytes from the warehouse are hostile until checked. The simulator's `tamper` fault edits responses
/// the way a broken warehouse or a proxy might; for each class of response no warehouse could have produced, the
/// real `cdfsync` process must stop with one classified line naming where it is, never crash, hang or skip a change,
/// and leave the checkpoint before it — and a run once the responses are good again must end with the panel of a
/// run that never saw them.
@Suite("Hostile wire", .serialized)
struct HostileWireTests {
    static let table = "main.research.participants"

    /// A `tamper` fault from its JSON.
    static func tamper(_ json: String) throws -> Fault {
        try JSONDecoder().decode(Fault.self, from: Data(json.utf8))
    }

    /// Runs `cdfsync sync --table …` as its own process, killed after `timeout` seconds (a hang fails the test, it
    /// does not stop the suite). Returns the exit status (nil when it had to be killed) and the output.
    static func sync(_ sim: RunningSimulator, dir: TempDir, extra: [String] = [], timeout: Double = 60) throws
        -> (status: Int32?, signal: Bool, output: String)
    {
        let r = try ChildProcess.run(
            try BuiltProduct.cdfsync.path,
            ["sync", "--table", table, "--key", "participant_id", "--host", sim.baseURL,
             "--warehouse-id", "8a1c2f3d4e5b6a70", "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")]
                + extra,
            environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"], deadline: timeout)
        return (r.killedAtDeadline ? nil : r.status, r.signaled, r.output)
    }

    /// The error line of a failed run.
    static func errorLine(_ output: String) -> String {
        output.split(separator: "\n").first { $0.hasPrefix("error:") }.map(String.init) ?? ""
    }

    /// After a refused run: no run record left `running`, the checkpoint at most `checkpointAtMost`, and a run on
    /// good responses ends with the whole panel.
    func expectRecovery(_ sim: RunningSimulator, _ dir: TempDir, checkpointAtMost: Int64?) throws {
        do {
            let store = try PanelStore(directory: dir.sub("state"), access: .reader)
            let checkpoint = try store.checkpoint(pipeline: Self.table)?.version
            if let limit = checkpointAtMost {
                #expect((checkpoint ?? -1) <= limit, "checkpoint \(String(describing: checkpoint))")
            } else {
                #expect(checkpoint == nil)
            }
            let last = try #require(try store.runs(limit: 1).first)
            #expect(String(decoding: last.json, as: UTF8.self).contains(#""status":"failed""#))
        }
        sim.sim.clearFaults()
        let again = try Self.sync(sim, dir: dir)
        #expect(again.status == 0, "\(again.output)")
        #expect(try panelContents(dir.sub("state")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))
    }

    // MARK: Rows

    /// Rows whose system columns, key or bytes no warehouse writes: row 3 of the first chunk fetched with GET
    /// (chunk 1: rows 50–99, all of v1) is edited.
    @Test(arguments: [
        (#"{"path": "rows[3][-2]", "value": "abc"}"#, "_commit_version is 'abc'"),
        (#"{"path": "rows[3][-2]", "value": ""}"#, "_commit_version is empty"),
        (#"{"path": "rows[3][-2]", "value": "-1"}"#, "_commit_version is '-1'"),
        (#"{"path": "rows[3][-2]", "value": "99999999999999999999"}"#, "_commit_version is '99999999999999999999'"),
        (#"{"path": "rows[3][-2]", "value": null}"#, "_commit_version is null"),
        (#"{"path": "rows[3][-2]", "value": "999999"}"#, "_commit_version 999999 is outside v0…v6"),
        (#"{"path": "rows[3][-2]", "value": "0"}"#, "_commit_version 0 comes after a row of v1"),
        (#"{"path": "rows[3][-3]", "value": "upsert"}"#, "_change_type is 'upsert'"),
        (#"{"path": "rows[3][-3]", "value": null}"#, "_change_type is null"),
        (#"{"path": "rows[3][1]", "raw_hex": "c328"}"#, "value 2 of the row is not valid UTF-8"),
        (#"{"path": "rows[3][0]", "value": null}"#, "the key column is NULL"),
    ])
    func aRowNoWarehouseWritesStopsTheRunWhereItIs(_ edit: String, _ expected: String) throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 50))
        let dir = TempDir()
        sim.sim.addFault(try Self.tamper(#"""
            {"kind": "tamper", "count": 1, "match": {"method": "GET", "statement_contains": "table_changes"},
             "tamper": [\#(edit)]}
            """#))
        let r = try Self.sync(sim, dir: dir, extra: ["--batch-size", "20"])
        let line = Self.errorLine(r.output)
        #expect(r.status == 1 && !r.signal, "\(r.output)")
        #expect(line.contains(expected), "\(line)")
        #expect(line.contains("row 54") || line.contains("row 3") || line.contains("chunk 1"), "names where: \(line)")
        // Chunk 1 holds rows of v1 only: nothing of v1 may be checkpointed (v0 is the CREATE TABLE).
        try expectRecovery(sim, dir, checkpointAtMost: 0)
    }

    // MARK: The history

    @Test(arguments: [
        #"{\"numOutputRows\":\"9223372036854775807\",\"numTargetRowsUpdated\":\"9223372036854775807\",\"numTargetRowsInserted\":\"9223372036854775807\"}"#,
        #"{\"numOutputRows\":5e18,\"numUpdatedRows\":5e18,\"numDeletedRows\":-7}"#,
    ])
    func hugeOperationMetricsAreEstimatesNotTraps(_ metrics: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        sim.sim.addFault(try Self.tamper(#"""
            {"kind": "tamper", "match": {"statement_contains": "DESCRIBE HISTORY"},
             "tamper": [{"path": "rows[*][12]", "value": "\#(metrics)"}]}
            """#))
        let r = try Self.sync(sim, dir: dir)
        #expect(r.status == 0 && !r.signal, "\(r.output)")
        #expect(try panelContents(dir.sub("state")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))
    }

    @Test func aLatestVersionTheHistoryDoesNotHaveStopsTheRunAtOnce() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        sim.sim.addFault(try Self.tamper(#"""
            {"kind": "tamper", "count": 1, "match": {"statement_contains": "LIMIT 1"},
             "tamper": [{"path": "rows[0][0]", "value": "9223372036854775807"}]}
            """#))
        let r = try Self.sync(sim, dir: dir, timeout: 30)
        #expect(r.status == 1, "ended by itself, not killed after 30 s: \(r.output)")
        let line = Self.errorLine(r.output)
        #expect(line.contains("protocol error") && line.contains("reported v9223372036854775807 as the latest version"),
            "\(line)")
        try expectRecovery(sim, dir, checkpointAtMost: nil)
    }

    // MARK: The chunk chain and the manifest

    @Test(arguments: [
        // Chunk 0 (in the submit's answer) links back to itself, by index and by link.
        (#"{"method": "POST", "statement_contains": "table_changes"}"#,
         #"[{"path": "result.next_chunk_index", "value": 0}, {"path": "result.next_chunk_internal_link", "remove": true}]"#,
         "links to chunk 0, not chunk 1"),
        (#"{"method": "POST", "statement_contains": "table_changes"}"#,
         #"[{"path": "result.next_chunk_index", "remove": true}, {"path": "result.next_chunk_internal_link", "value": "/api/2.0/sql/statements/x/result/chunks/1"}]"#,
         "links to '/api/2.0/sql/statements/x/result/chunks/1', not chunk 1"),
        // Chunk 1 links back to chunk 0; then chunk 1 skips to 3.
        (#"{"method": "GET", "statement_contains": "table_changes"}"#,
         #"[{"path": "next_chunk_index", "value": 0}, {"path": "next_chunk_internal_link", "remove": true}]"#,
         "links to chunk 0, not chunk 2"),
        (#"{"method": "GET", "statement_contains": "table_changes"}"#,
         #"[{"path": "next_chunk_index", "value": 3}, {"path": "next_chunk_internal_link", "remove": true}]"#,
         "links to chunk 3, not chunk 2"),
        // The chain ends early.
        (#"{"method": "GET", "statement_contains": "table_changes"}"#,
         #"[{"path": "next_chunk_index", "remove": true}, {"path": "next_chunk_internal_link", "remove": true}]"#,
         "ended after 2 of the manifest's 10 chunks"),
        // Counts that do not hold together.
        (#"{"method": "POST", "statement_contains": "table_changes"}"#,
         #"[{"path": "manifest.total_row_count", "value": 1}]"#,
         "does not hold together: 10 chunk(s) for 1 row(s)"),
    ])
    func aChunkChainThatLoopsSkipsOrStopsShortStopsTheRun(_ match: String, _ edits: String, _ expected: String) throws {
        let sim = try RunningSimulator(configuration: .init(rowsPerChunk: 50))
        let dir = TempDir()
        sim.sim.addFault(try Self.tamper(#"{"kind": "tamper", "count": 1, "match": \#(match), "tamper": \#(edits)}"#))
        let r = try Self.sync(sim, dir: dir, extra: ["--disposition", "inline"], timeout: 30)
        #expect(r.status == 1, "ended by itself, not killed after 30 s: \(r.output)")
        let line = Self.errorLine(r.output)
        #expect(line.contains("protocol error") && line.contains(expected), "\(line)")
        try expectRecovery(sim, dir, checkpointAtMost: 0)
    }
}
