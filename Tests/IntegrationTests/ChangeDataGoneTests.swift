@testable import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// Every error class that means "the change data of this range is gone" makes a sync resync from a snapshot.
@Suite("Change data gone: every class falls back to a snapshot")
struct ChangeDataGoneTests {
    static let table = "main.research.participants"

    /// The classes the simulator answers a vacuumed range with (`vacuum_error_class`), plus the one it gives for a
    /// timestamp bound before the oldest commit (injected: a sync reads by version).
    static let vacuumClasses = [
        "DELTA_VERSION_NOT_FOUND", "DELTA_CHANGE_DATA_FILE_NOT_FOUND", "DELTA_FILE_NOT_FOUND_DETAILED",
        "FAILED_READ_FILE.FILE_NOT_EXIST", "FAILED_READ_FILE.DBR_FILE_NOT_EXIST", "DELTA_TRUNCATED_TRANSACTION_LOG",
        "DELTA_LOG_FILE_NOT_FOUND", "DELTA_MISSING_FILES_UNEXPECTED_VERSION",
        "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION", "DELTA_MISSING_CHANGE_DATA",
    ]

    @Test func theListCoversEveryClassTheClientTreatsAsGone() {
        #expect(Set(Self.vacuumClasses + ["DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION"])
            == ErrorClassification.changeDataGoneClasses)
    }

    /// v0…v6 synced; v7…v9 committed; then VACUUM removes what v7…v8 need. The next sync falls back to a snapshot at
    /// v9 whatever class the warehouse names, and the panel ends as if every change had been read.
    @Test(arguments: vacuumClasses)
    func aVacuumedRangeFallsBackToASnapshot(_ errorClass: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try runSync(sim, state: dir.sub("s"), output: dir.sub("o"))
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        try sim.sim.vacuum(table: Self.table, earliestRetainedVersion: 9, errorClass: errorClass)
        let s = try runSync(sim, state: dir.sub("s"), output: dir.sub("o"))
        #expect(s.mode == .snapshot, "\(s.warnings)")
        #expect(s.warnings.contains { $0.contains(errorClass) && $0.contains("resynced from a snapshot at v9") },
            "\(s.warnings)")
        #expect(try PanelStore(directory: dir.sub("s")).checkpoint(pipeline: s.pipeline)?.tableVersion == 9)
        let expected = try expectedPanel(workspace: fixturePath("demo-workspace.json"),
            extraCommits: [fixturePath("demo-commits-2.json")])
        #expect(try panelContents(dir.sub("s")) == expected)
        let again = try runSync(sim, state: dir.sub("s"), output: dir.sub("o"))
        #expect(again.noNewCommits)
    }

    @Test func aTimestampBeforeTheRetainedCommitsFallsBackToASnapshot() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try runSync(sim, state: dir.sub("s"), output: dir.sub("o"))
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        var f = Fault(match: .init(statementContains: "table_changes"), count: 1, kind: .sqlError,
            message: "The provided timestamp (2026-01-01 00:00:00.0) is before the earliest version available to this "
                + "table.")
        f.errorClass = "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION"
        f.sqlState = "42816"
        sim.sim.addFault(f)
        let s = try runSync(sim, state: dir.sub("s"), output: dir.sub("o"))
        #expect(s.mode == .snapshot)
        #expect(s.warnings.contains { $0.contains("DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION") }, "\(s.warnings)")
    }

    /// A damaged file is not a missing one: `FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER` fails the run, no snapshot.
    @Test func aDamagedFileIsNotChangeDataGone() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        _ = try runSync(sim, state: dir.sub("s"), output: dir.sub("o"))
        try sim.appendCommits(from: fixturePath("demo-commits-2.json"))
        var f = Fault(match: .init(statementContains: "table_changes"), count: 1, kind: .sqlError,
            message: "Error while reading file s3://b/t/part-0.parquet. Could not read footer.")
        f.errorClass = "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER"
        f.sqlState = "KD001"
        sim.sim.addFault(f)
        #expect(throws: SyncFailure.self) { _ = try runSync(sim, state: dir.sub("s"), output: dir.sub("o")) }
        #expect(try PanelStore(directory: dir.sub("s")).checkpoint(pipeline: Self.table)?.tableVersion == 6)
    }

    /// The fixture key and the admin endpoint set the class per table; an unknown class is refused.
    @Test func theVacuumErrorClassIsSetPerTable() throws {
        let sim = try RunningSimulator()
        let client = StatementClient(settings: try sim.settings())
        func errorClass(_ sql: String) -> String? {
            do {
                try client.execute(Statement(sql: sql), sink: CollectingSink())
                return nil
            } catch {
                return (error as? DatabricksError)?.errorClass
            }
        }
        try sim.sim.vacuum(table: Self.table, earliestRetainedVersion: 3,
            errorClass: "DELTA_CHANGE_DATA_FILE_NOT_FOUND")
        #expect(errorClass("SELECT * FROM table_changes('\(Self.table)', 1, 4)") == "DELTA_CHANGE_DATA_FILE_NOT_FOUND")
        #expect(errorClass("SELECT * FROM table_changes('\(Self.table)', 3, 4)") == nil)
        #expect(throws: (any Error).self) {
            try sim.sim.vacuum(table: Self.table, earliestRetainedVersion: 3, errorClass: "NOPE")
        }
        // The fixture key, on a table of its own.
        func table(_ errorClass: String) throws -> Table {
            try JSONDecoder().decode(Table.self, from: Data("""
                {"name": "main.research.gone", "earliest_retained_version": 2, "vacuum_error_class": "\(errorClass)",
                 "columns": [{"name": "id", "type": "INT"}],
                 "commits": [{"version": 0, "timestamp": "2026-02-01T08:00:00.000Z", "operation": "CREATE TABLE",
                              "set_properties": {"delta.enableChangeDataFeed": "true"}},
                             {"version": 1, "timestamp": "2026-02-01T09:00:00.000Z", "operation": "WRITE",
                              "insert": [["1"]]},
                             {"version": 2, "timestamp": "2026-02-02T09:00:00.000Z", "operation": "WRITE",
                              "insert": [["2"]]}]}
                """.utf8))
        }
        #expect(throws: (any Error).self) { try sim.sim.addTable(try table("DELTA_NO_SUCH_CLASS")) }
        try sim.sim.addTable(try table("FAILED_READ_FILE.DBR_FILE_NOT_EXIST"))
        #expect(errorClass("SELECT * FROM table_changes('main.research.gone', 1, 2)")
            == "FAILED_READ_FILE.DBR_FILE_NOT_EXIST")
    }
}
