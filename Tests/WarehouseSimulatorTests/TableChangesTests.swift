import Foundation
import Testing
@testable import WarehouseSimulator

@Suite struct TableChangesTests {
    @Test func rangeReturnsChangeRowsInVersionOrder() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 3))
        let (cols, rows) = try await h.rows(
            "SELECT id, email, _change_type, _commit_version, _commit_timestamp FROM table_changes('main.crm.customers', 2, 3) ORDER BY _commit_version")
        #expect(cols == ["id", "email", "_change_type", "_commit_version", "_commit_timestamp"])
        #expect(rows.map { $0[2]! } == ["insert", "update_preimage", "update_postimage", "delete"])
        #expect(rows.map { $0[0]! } == ["4", "2", "2", "3"])
        #expect(rows[1][1] == "bo@example.com")
        #expect(rows[2][1] == "bo@example.org")
        #expect(rows.map { $0[3]! } == ["2", "2", "2", "3"])
        #expect(rows[3][4] == "2026-03-03T10:00:00.000Z")
    }

    @Test func starIncludesChangeColumnsAndTypes() async throws {
        let h = try Harness()
        let r = try await h.execute("SELECT * FROM table_changes('`main`.`crm`.`customers`', :s, :e)", params: [
            ["name": "s", "value": "1", "type": "BIGINT"], ["name": "e", "value": "1", "type": "BIGINT"],
        ])
        let cols = ((r["manifest"] as! [String: Any])["schema"] as! [String: Any])["columns"] as! [[String: Any]]
        #expect(cols.suffix(3).map { $0["name"] as! String } == ["_change_type", "_commit_version", "_commit_timestamp"])
        #expect(cols.suffix(3).map { $0["type_name"] as! String } == ["STRING", "LONG", "TIMESTAMP"])
        #expect((r["manifest"] as! [String: Any])["total_row_count"] as? Int == 3)
    }

    @Test func endDefaultsToLatestAndIsCapped() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        #expect(try await h.rows("SELECT id FROM table_changes('main.crm.customers', 3)").rows.count == 1)
        #expect(try await h.rows("SELECT id FROM table_changes('main.crm.customers', 3, 10)").rows.count == 1)
    }

    @Test func timestampBounds() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let r = try await h.rows("SELECT _commit_version FROM table_changes('main.crm.customers', '2026-03-01T08:30:00Z', '2026-03-02 09:15:00')")
        #expect(Set(r.rows.map { $0[0]! }) == ["1", "2"])
        let between = try await h.rows("SELECT * FROM table_changes('main.crm.customers', '2026-03-02T10:00:00Z', '2026-03-02T11:00:00Z')")
        #expect(between.rows.isEmpty)
        let after = try await h.execute("SELECT * FROM table_changes('main.crm.customers', '2027-01-01T00:00:00Z')")
        #expect(errorClass(after) == "DELTA_TIMESTAMP_GREATER_THAN_COMMIT")
    }

    @Test(arguments: [
        ("SELECT * FROM table_changes('main.crm.customers', 4)", "DELTA_CDC_START_VERSION_AFTER_LATEST", "22003"),
        ("SELECT * FROM table_changes('main.crm.customers', 3, 2)", "DELTA_INVALID_CDC_RANGE", "22003"),
        ("SELECT * FROM table_changes('main.crm.legacy', 1, 3)", "DELTA_MISSING_CHANGE_DATA", "KD002"),
        ("SELECT * FROM table_changes('main.crm.vacuumed', 1, 3)", "DELTA_VERSION_NOT_FOUND", "22003"),
        ("SELECT * FROM table_changes('main.crm.opted_in', 0)", "DELTA_TABLE_ONLY_OPERATION", "0AKDD"),
        ("SELECT * FROM table_changes('main.crm.nope', 0)", "TABLE_OR_VIEW_NOT_FOUND", "42P01"),
        ("SELECT * FROM table_changes('main.secret.salaries', 0)", "INSUFFICIENT_PERMISSIONS", "42501"),
        ("SELECT nope FROM table_changes('main.crm.customers', 0)", "UNRESOLVED_COLUMN.WITH_SUGGESTION", "42703"),
        ("SELECT * FROM table_changes('main.crm.customers', NULL)", "DELTA_CDC_READ_NULL_RANGE_BOUNDARY", "22004"),
        ("SELECT * FROM table_changes('main.crm.customers')", "WRONG_NUM_ARGS.WITHOUT_SUGGESTION", "42605"),
        ("SELECT * FROM table_changes('main.crm.customers', :missing)", "UNBOUND_SQL_PARAMETER", "42P02"),
        ("SELECT * FROM table_changes(email, 0)", "DELTA_CDC_NON_CONSTANT_ARGUMENT", "42K0H"),
    ])
    func errorClasses(sql: String, errorClass expected: String, sqlState: String) async throws {
        let h = try Harness()
        let r = try await h.execute(sql)
        #expect(state(r) == "FAILED")
        let status = r["status"] as! [String: Any]
        #expect((status["error"] as? [String: Any])?["error_code"] as? String == "BAD_REQUEST")
        #expect(errorClass(r) == expected)
        #expect(status["sql_state"] as? String == sqlState)
        #expect(errorMessage(r)?.contains("SQLSTATE: \(sqlState)") == true)
        #expect(r["manifest"] == nil && r["result"] == nil)
    }

    @Test func missingChangeDataNamesTheFirstVersionWithout() async throws {
        let h = try Harness()
        let r = try await h.execute("SELECT * FROM table_changes('main.crm.legacy', 0, 3)")
        #expect(errorMessage(r)?.contains("range [0 , 3] as change data was not recorded for version [0]") == true)
        // From the version that enabled it on, change data is there.
        #expect(try await h.rows("SELECT id FROM table_changes('main.crm.legacy', 2, 3)").rows.map { $0[0]! } == ["2"])
    }

    @Test func aDroppedTableIsGoneAndARecreatedOneStartsItsOwnHistoryAtV0() async throws {
        let h = try Harness()
        #expect(try await h.call("DELETE", "/_sim/tables/main.crm.customers").status == 401)
        let dropped = try await h.call("DELETE", "/_sim/tables/main.crm.customers", token: "sim-admin")
        #expect(dropped.status == 200)
        #expect(try await h.call("DELETE", "/_sim/tables/main.crm.customers", token: "sim-admin").status == 404)
        #expect(h.sim.latestVersion(table: "main.crm.customers") == nil)
        let gone = try await h.execute("SELECT * FROM table_changes('main.crm.customers', 0)")
        #expect(errorClass(gone) == "TABLE_OR_VIEW_NOT_FOUND")
        // CREATE TABLE again under the name: v0 and v1 only, its rows and nothing of the old history.
        let table: [String: Any] = [
            "name": "main.crm.customers", "table_type": "MANAGED",
            "columns": [["name": "id", "type": "BIGINT", "nullable": false], ["name": "email", "type": "STRING"]],
            "commits": [
                ["version": 0, "timestamp": "2026-04-01T10:00:00.000Z", "operation": "CREATE TABLE",
                 "set_properties": ["delta.enableChangeDataFeed": "true"]],
                ["version": 1, "timestamp": "2026-04-01T11:00:00.000Z", "operation": "WRITE",
                 "insert": [["9", "zoe@example.com"]]],
            ],
        ]
        let created = try await h.call("POST", "/_sim/tables", json: table, token: "sim-admin")
        #expect(created.status == 200, "\(created.text)")
        #expect(created.json["latest_version"] as? Int == 1)
        #expect(try await h.rows("DESCRIBE HISTORY main.crm.customers").rows.map { $0[0]! } == ["1", "0"])
        #expect(try await h.rows("SELECT id, _change_type, _commit_version FROM table_changes('main.crm.customers', 0)").rows
            == [["9", "insert", "1"]])
        let after = try await h.execute("SELECT * FROM table_changes('main.crm.customers', 3)")
        #expect(errorClass(after) == "DELTA_CDC_START_VERSION_AFTER_LATEST")
    }

    @Test func appendedCommitsShowUpAndWrongVersionsConflict() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let commit: [String: Any] = [
            "version": 4, "timestamp": "2026-03-04T10:00:00.000Z", "operation": "MERGE",
            "update": [["before": ["1", "ana@example.com", "10.50", "Opted In", "2026-03-01T09:00:00.000Z"],
                        "after": ["1", "ana@example.net", "10.50", "Opted Out", "2026-03-04T10:00:00.000Z"]]],
            "insert": [["5", "eve@example.com", "3.00", "Opted In", "2026-03-04T10:00:00.000Z"]],
        ]
        let noAuth = try await h.call("POST", "/_sim/tables/main.crm.customers/commits", json: commit)
        #expect(noAuth.status == 401)
        let ok = try await h.call("POST", "/_sim/tables/main.crm.customers/commits", json: commit, token: "sim-admin")
        #expect(ok.status == 200)
        #expect(ok.json["version"] as? Int == 4)
        let again = try await h.call("POST", "/_sim/tables/main.crm.customers/commits", json: commit, token: "sim-admin")
        #expect(again.status == 409)
        #expect((again.json["error"] as? String)?.contains("latest + 1 = 5") == true)
        let rows = try await h.rows("SELECT id, _change_type FROM table_changes('main.crm.customers', 4, 4)").rows
        #expect(rows.map { $0[1]! } == ["insert", "update_preimage", "update_postimage"])
        #expect(try await h.rows("DESCRIBE HISTORY main.crm.customers LIMIT 1").rows[0][0] == "4")
        // A before-row that is not in the table is rejected.
        var bad = commit
        bad["version"] = 5
        bad["timestamp"] = "2026-03-05T10:00:00.000Z"
        let badReply = try await h.call("POST", "/_sim/tables/main.crm.customers/commits", json: bad, token: "sim-admin")
        #expect(badReply.status == 400)
        // In-process API does the same.
        try h.sim.appendCommit(
            table: "main.crm.customers",
            Commit(version: 5, timestamp: "2026-03-05T10:00:00.000Z", operation: "DELETE",
                   delete: [["5", "eve@example.com", "3.00", "Opted In", "2026-03-04T10:00:00.000Z"]]))
        #expect(h.sim.latestVersion(table: "main.crm.customers") == 5)
        #expect(try await h.rows("SELECT id FROM main.crm.customers").rows.map { $0[0]! } == ["1", "2", "4"])
    }
}
