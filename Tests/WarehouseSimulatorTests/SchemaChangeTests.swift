import Foundation
import Testing
@testable import WarehouseSimulator

/// Schema changes (fixture `alter` commits): reading old versions in their own columns, `table_changes` in the
/// schema of its end version, and Delta's refusal of a change-data range across a rename, drop or type change.
@Suite struct SchemaChangeTests {
    static let table = "main.crm.customers"

    /// `main.crm.customers` (v0…v3, CDF on) plus: v4 column mapping on, v5 an insert, v6 `email` renamed
    /// `email_address`, v7 column `tier` added, v8 an insert with a tier, v9 `score` dropped, v10 an update.
    func evolved() async throws -> Harness {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let ts = { (v: Int) in "2026-03-0\(min(v - 1, 9))T12:\(10 + v):00.000Z" }
        func commit(_ v: Int, _ op: String, props: [String: String]? = nil, insert: [Row]? = nil,
                    update: [Commit.Update]? = nil, alter: Commit.Alter? = nil) throws {
            try h.sim.appendCommit(table: Self.table, Commit(version: v, timestamp: ts(v), operation: op,
                setProperties: props, insert: insert, update: update, alter: alter))
        }
        try await commit(4, "SET TBLPROPERTIES", props: ["delta.columnMapping.mode": "name"])
        try await commit(5, "WRITE", insert: [["5", "ed@example.com", "2.00", "Opted In", ts(5)]])
        try await commit(6, "RENAME COLUMN", alter: .init(renameColumn: .init(from: "email", to: "email_address")))
        try await commit(7, "ADD COLUMNS", alter: .init(addColumns: [ColumnDef(name: "tier", type: "STRING")]))
        try await commit(8, "WRITE", insert: [["6", "fa@example.com", "3.00", "Opted In", ts(8), "gold"]])
        try await commit(9, "DROP COLUMNS", alter: .init(dropColumns: ["score"]))
        try await commit(10, "MERGE", update: [.init(before: ["6", "fa@example.com", "Opted In", ts(8), "gold"],
                                               after: ["6", "fa@example.com", "Opted In", ts(10), "silver"])])
        return h
    }

    @Test func aRangeAcrossARenameOrDropFailsNamingTheVersion() async throws {
        let h = try await evolved()
        let r = try await h.execute("SELECT * FROM table_changes('\(Self.table)', 5, 10)")
        #expect(errorClass(r) == "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE")
        #expect((r["status"] as? [String: Any]).flatMap { ($0["error"] as? [String: Any])?["message"] as? String }?
            .contains("incompatible schema change at version 6") == true)
        #expect((r["status"] as? [String: Any])?["sql_state"] as? String == "0AKDC")
        let drop = try await h.execute("SELECT * FROM table_changes('\(Self.table)', 7, 10)")
        #expect(errorMessage(drop)?.contains("at version 9") == true, "\(drop)")
        // Starting at the change itself is readable.
        #expect(try await h.rows("SELECT id FROM table_changes('\(Self.table)', 9, 10)").rows.count == 2)
    }

    @Test func aRangeIsReadInTheSchemaOfItsEndVersion() async throws {
        let h = try await evolved()
        let before = try await h.rows("SELECT * FROM table_changes('\(Self.table)', 5, 5)")
        #expect(before.columns.prefix(5) == ["id", "email", "score", "consent_status", "last_updated_at"])
        #expect(before.rows.map { $0[1] } == ["ed@example.com"])
        // An added column inside the range is compatible: rows written before it read NULL there.
        let added = try await h.rows("SELECT id, email_address, tier, _commit_version FROM table_changes('\(Self.table)', 6, 8)")
        #expect(added.rows == [["6", "fa@example.com", "gold", "8"]])
        let after = try await h.rows("SELECT * FROM table_changes('\(Self.table)', 9, 10)")
        #expect(after.columns.prefix(5) == ["id", "email_address", "consent_status", "last_updated_at", "tier"])
        #expect(after.rows.map { $0[4] } == ["gold", "silver"])
        #expect(after.rows.map { $0[5] } == ["update_preimage", "update_postimage"])
        // The old name is gone from the latest schema.
        #expect(errorClass(try await h.execute("SELECT email FROM table_changes('\(Self.table)', 9, 10)"))
            == "UNRESOLVED_COLUMN.WITH_SUGGESTION")
    }

    @Test func oldVersionsKeepTheirColumns() async throws {
        let h = try await evolved()
        let v5 = try await h.rows("SELECT * FROM \(Self.table) VERSION AS OF 5 ORDER BY id")
        #expect(v5.columns == ["id", "email", "score", "consent_status", "last_updated_at"])
        #expect(v5.rows.map { $0[0] } == ["1", "2", "4", "5"])
        let now = try await h.rows("SELECT * FROM \(Self.table) ORDER BY id")
        #expect(now.columns == ["id", "email_address", "consent_status", "last_updated_at", "tier"])
        #expect(now.rows.map { $0[4] } == [nil, nil, nil, nil, "silver"])
        #expect(now.rows[0][1] == "ana@example.com")
        let described = try await h.rows("SELECT column_name FROM main.information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position")
        #expect(described.rows.map { $0[0] } == ["id", "email_address", "consent_status", "last_updated_at", "tier"])
    }

    @Test func historyRecordsTheChangesAsDeltaDoes() async throws {
        let h = try await evolved()
        let rows = try await h.rows("DESCRIBE HISTORY \(Self.table)").rows
        func entry(_ v: String) -> (op: String?, params: [String: String]) {
            let r = rows.first { $0[0] == v }!
            let params = try! JSONSerialization.jsonObject(with: Data(r[5]!.utf8)) as! [String: String]
            return (r[4], params)
        }
        #expect(entry("6").op == "RENAME COLUMN")
        #expect(entry("6").params == ["oldColumnPath": "email", "newColumnPath": "email_address"])
        #expect(entry("9").op == "DROP COLUMNS")
        #expect(entry("9").params["columns"] == "[\"score\"]")
        #expect(entry("7").op == "ADD COLUMNS")
        let added = try JSONSerialization.jsonObject(with: Data(entry("7").params["columns"]!.utf8)) as! [[String: Any]]
        #expect((added.first?["column"] as? [String: Any])?["name"] as? String == "tier")
        // SET TBLPROPERTIES records only what it set.
        #expect(entry("4").params["properties"] == "{\"delta.columnMapping.mode\":\"name\"}")
    }

    @Test func withoutColumnMappingAnAddedColumnIsReadInTheLatestSchema() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        try h.sim.appendCommit(table: Self.table, Commit(version: 4, timestamp: "2026-03-04T10:00:00Z",
            operation: "ADD COLUMNS", alter: .init(addColumns: [ColumnDef(name: "tier", type: "STRING")])))
        let r = try await h.rows("SELECT id, tier FROM table_changes('\(Self.table)', 1, 1)")
        #expect(r.rows == [["1", nil], ["2", nil], ["3", nil]])
    }

    @Test func aWorkspaceFileWithAlterCommitsLoadsAndChecksRowsAgainstTheColumnsOfTheirVersion() async throws {
        func workspace(_ laterRow: String) async throws -> Workspace {
            let json = """
                {"format": "cdfsync-sim/1",
                 "warehouses": [{"id": "0a1b2c3d4e5f6071", "name": "W", "state": "RUNNING"}],
                 "principals": [{"name": "p", "tokens": ["dapi-test-token"], "warehouses": {"0a1b2c3d4e5f6071": "CAN_USE"},
                                 "grants": [{"on": "main", "privileges": ["USE CATALOG", "USE SCHEMA", "SELECT"]}]}],
                 "tables": [{"name": "main.s.t", "columns": [{"name": "id", "type": "STRING"}, {"name": "a", "type": "STRING"}],
                   "commits": [
                     {"version": 0, "timestamp": "2026-01-01T00:00:00Z", "operation": "CREATE TABLE",
                      "set_properties": {"delta.enableChangeDataFeed": "true", "delta.columnMapping.mode": "name"}},
                     {"version": 1, "timestamp": "2026-01-02T00:00:00Z", "operation": "WRITE", "insert": [["1", "x"]]},
                     {"version": 2, "timestamp": "2026-01-03T00:00:00Z", "operation": "DROP COLUMNS", "alter": {"drop_columns": ["a"]}},
                     {"version": 3, "timestamp": "2026-01-04T00:00:00Z", "operation": "WRITE", "insert": [\(laterRow)]}]}]}
                """
            return try Workspace.load(data: Data(json.utf8))
        }
        let h = try Harness(workspace: try await workspace(#"["2"]"#), configuration: .init(rowsPerChunk: 100))
        #expect(try await h.rows("SELECT * FROM main.s.t ORDER BY id").rows == [["1"], ["2"]])
        #expect(try await h.rows("SELECT * FROM main.s.t VERSION AS OF 1").rows == [["1", "x"]])
        // A row in the columns of before the drop is refused when the workspace loads.
        await #expect {
            _ = try await workspace(#"["2", "y"]"#)
        } throws: { "\($0)".contains("commit 3: insert row has 2 values, the table has 1 columns") }
    }

    @Test func anInjectedSQLErrorFailsTheMatchingStatementsOnly() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))  // the result cache is on by default
        let sql = "SELECT id FROM table_changes('\(Self.table)', 1, 3)"
        let all = try await h.rows(sql).rows.count  // now in the result cache: the fault must still apply
        var f = Fault(match: .init(statementContains: "TABLE_CHANGES("), count: 2, kind: .sqlError,
                      message: "Cannot read changes from version 1 because its removed files use the version 0 schema, which is incompatible with the read schema.")
        f.errorClass = "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_STARTING_COMMIT_SCHEMA"
        f.sqlState = "0AKDC"
        h.sim.addFault(f)
        #expect(try await h.rows("SELECT id FROM main.crm.customers").rows.count == 3)  // no match: untouched
        let r = try await h.execute(sql)
        #expect(errorClass(r) == "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_STARTING_COMMIT_SCHEMA")
        #expect(errorMessage(r)?.hasSuffix("incompatible with the read schema. SQLSTATE: 0AKDC") == true, "\(r)")
        #expect((r["status"] as? [String: Any])?["sql_state"] as? String == "0AKDC")
        #expect(errorClass(try await h.execute(sql)) != nil)  // count 2
        #expect(try await h.rows(sql).rows.count == all)  // used up
        // Admin API: the kind is accepted, and it does not affect HTTP requests.
        let added = try await h.call("POST", "/_sim/faults", json: ["kind": "sql_error", "error_class": "X", "count": 1,
                                                              "match": ["statement_contains": "nope"]], token: "sim-admin")
        #expect(added.status == 200)
        #expect(try await h.rows(sql).rows.count == all)
    }

    @Test func alterCommitsAreCheckedAsDatabricksChecksThem() async throws {
        let h = try Harness()
        func refused(_ op: String, _ alter: Commit.Alter, props: [String: String]? = nil) -> String {
            do {
                try h.sim.appendCommit(table: Self.table, Commit(version: 4, timestamp: "2026-03-04T10:00:00Z",
                    operation: op, setProperties: props, alter: alter))
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(refused("RENAME COLUMN", .init(renameColumn: .init(from: "email", to: "mail"))).contains("column mapping"))
        #expect(refused("DROP COLUMNS", .init(dropColumns: ["score"])).contains("column mapping"))
        #expect(refused("RENAME COLUMN", .init(renameColumn: .init(from: "nope", to: "x")),
                        props: ["delta.columnMapping.mode": "name"]).contains("no column nope"))
        #expect(refused("ADD COLUMNS", .init(addColumns: [ColumnDef(name: "EMAIL", type: "STRING")])).contains("already exists"))
        #expect(refused("ADD COLUMNS", .init(addColumns: [ColumnDef(name: "x", type: "INT", nullable: false)])).contains("nullable"))
        #expect(refused("WRITE", .init(addColumns: [ColumnDef(name: "x", type: "INT")])).contains("ADD COLUMNS"))
        #expect(refused("CHANGE COLUMN", .init(changeColumnType: .init(name: "id", type: "INT")),
                        props: ["delta.enableTypeWidening": "true"]).contains("not a type widening"))
        #expect(refused("CHANGE COLUMN", .init(changeColumnType: .init(name: "id", type: "INT"))).contains("delta.enableTypeWidening"))
        // None of them changed the table.
        #expect(h.sim.latestVersion(table: Self.table) == 3)
    }

    @Test func aTypeWideningBreaksTheFeedLikeARename() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        func commit(_ v: Int, _ op: String, props: [String: String]? = nil, insert: [Row]? = nil, alter: Commit.Alter? = nil) async throws {
            try h.sim.appendCommit(table: Self.table, Commit(version: v, timestamp: "2026-03-04T10:0\(v):00Z", operation: op,
                setProperties: props, insert: insert, alter: alter))
        }
        try await commit(4, "ADD COLUMNS", props: ["delta.enableTypeWidening": "true"],
                   alter: .init(addColumns: [ColumnDef(name: "visits", type: "INT")]))
        try await commit(5, "WRITE", insert: [["7", "gu@example.com", "1.00", "Opted In", "2026-03-04T10:05:00Z", "12"]])
        try await commit(6, "CHANGE COLUMN", alter: .init(changeColumnType: .init(name: "visits", type: "BIGINT")))
        #expect(errorClass(try await h.execute("SELECT * FROM table_changes('\(Self.table)', 5, 6)"))
            == "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE")
        #expect(try await h.rows("SELECT visits FROM table_changes('\(Self.table)', 5, 5)").rows == [["12"]])
        let described = try await h.rows("DESCRIBE TABLE \(Self.table)").rows
        #expect(described.first { $0[0] == "visits" }?[1] == "bigint")
    }
}
