import Foundation
import Testing
@testable import WarehouseSimulator

@Suite struct StatementTests {
    @Test func selectRoundTripsWithRecordedShape() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let r = try await h.execute("SELECT * FROM main.crm.customers")
        #expect(Set(r.keys) == ["statement_id", "status", "manifest", "result"])
        #expect(state(r) == "SUCCEEDED")
        let manifest = r["manifest"] as! [String: Any]
        #expect(Set(manifest.keys) == ["format", "schema", "total_chunk_count", "chunks", "total_row_count", "truncated"])
        #expect(manifest["format"] as? String == "JSON_ARRAY")
        let schema = manifest["schema"] as! [String: Any]
        #expect(schema["column_count"] as? Int == 5)
        let cols = schema["columns"] as! [[String: Any]]
        #expect(cols[0]["type_text"] as? String == "BIGINT")
        #expect(cols[0]["type_name"] as? String == "LONG")
        #expect(cols[0]["position"] as? Int == 0)
        #expect(cols[2]["type_name"] as? String == "DECIMAL")
        #expect(cols[2]["type_precision"] as? Int == 10)
        #expect(cols[2]["type_scale"] as? Int == 2)
        #expect(cols[1]["type_precision"] == nil)
        let chunks = manifest["chunks"] as! [[String: Any]]
        #expect(chunks.count == 1)
        #expect(chunks[0]["byte_count"] == nil)
        #expect(manifest["total_byte_count"] == nil)
        let result = r["result"] as! [String: Any]
        #expect(Set(result.keys) == ["chunk_index", "row_offset", "row_count", "data_array"])
        let data = result["data_array"] as! [[Any]]
        #expect(data.count == 3)
        // Every cell is a string or null.
        for row in data {
            for cell in row { #expect(cell is String || cell is NSNull) }
        }
        #expect(data.map { $0[0] as? String } == ["1", "2", "4"])
        #expect(data[2][1] as? String == "di \"quoted\" @example.com")

        // GET returns the same statement.
        let id = r["statement_id"] as! String
        let g = try await h.call("GET", "/api/2.0/sql/statements/\(id)")
        #expect(g.status == 200)
        #expect(g.json["statement_id"] as? String == id)
        #expect(((g.json["result"] as? [String: Any])?["data_array"] as? [[Any]])?.count == 3)
        #expect(g.header("x-request-id") != nil)
    }

    @Test func postWithoutTrailingSlashAndWithBothWork() async throws {
        let h = try Harness()
        for path in ["/api/2.0/sql/statements", "/api/2.0/sql/statements/"] {
            let r = try await h.call("POST", path, json: ["statement": "SELECT id FROM main.crm.customers", "warehouse_id": Harness.warehouse])
            #expect(r.status == 200)
            #expect(state(r.json) == "SUCCEEDED")
        }
    }

    @Test func multiChunkInlineResultsLinkEveryChunk() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 2))
        let r = try await h.execute("SELECT * FROM table_changes('main.crm.customers', 0)")
        let manifest = r["manifest"] as! [String: Any]
        let total = manifest["total_row_count"] as! Int
        #expect(total == 7)
        #expect(manifest["total_chunk_count"] as? Int == 4)
        let chunks = manifest["chunks"] as! [[String: Any]]
        #expect(chunks.map { $0["row_offset"] as! Int } == [0, 2, 4, 6])
        #expect(chunks.map { $0["row_count"] as! Int } == [2, 2, 2, 1])
        var result = r["result"] as! [String: Any]
        var seen = 0
        var index = 0
        while true {
            #expect(result["chunk_index"] as? Int == index)
            #expect(result["row_offset"] as? Int == seen)
            let n = (result["data_array"] as! [[Any]]).count
            #expect(result["row_count"] as? Int == n)
            seen += n
            guard let link = result["next_chunk_internal_link"] as? String else {
                #expect(result["next_chunk_index"] == nil)
                break
            }
            #expect(result["next_chunk_index"] as? Int == index + 1)
            let c = try await h.call("GET", link)
            #expect(c.status == 200)
            result = c.json
            #expect(result["statement_id"] == nil)
            #expect(result["manifest"] == nil)
            index += 1
        }
        #expect(seen == total)
        // Chunks can be fetched in any order, repeatedly, with a matching row_offset.
        let id = r["statement_id"] as! String
        let again = try await h.call("GET", "/api/2.0/sql/statements/\(id)/result/chunks/3?row_offset=6")
        #expect(again.status == 200)
        #expect((again.json["data_array"] as? [[Any]])?.count == 1)
        let wrongOffset = try await h.call("GET", "/api/2.0/sql/statements/\(id)/result/chunks/3?row_offset=5")
        #expect(wrongOffset.status == 400)
        let outOfRange = try await h.call("GET", "/api/2.0/sql/statements/\(id)/result/chunks/4")
        #expect(outOfRange.status == 400)
        #expect(outOfRange.json["error_code"] as? String == "INVALID_PARAMETER_VALUE")
    }

    @Test func emptyResultHasNoChunksAndEmptyResult() async throws {
        let h = try Harness()
        let r = try await h.execute("SELECT * FROM main.crm.customers VERSION AS OF 0")
        #expect(state(r) == "SUCCEEDED")
        let manifest = r["manifest"] as! [String: Any]
        #expect(manifest["total_chunk_count"] as? Int == 0)
        #expect(manifest["total_row_count"] as? Int == 0)
        #expect(manifest["chunks"] == nil)
        #expect((manifest["schema"] as? [String: Any])?["column_count"] as? Int == 5)
        #expect((r["result"] as? [String: Any])?.isEmpty == true)
    }

    @Test func versionAsOfReturnsEachSnapshot() async throws {
        let h = try Harness()
        #expect(try await h.rows("SELECT id FROM main.crm.customers VERSION AS OF 1").rows.map { $0[0]! } == ["1", "2", "3"])
        let v2 = try await h.rows("SELECT id, email FROM main.crm.customers VERSION AS OF 2").rows
        #expect(v2.map { $0[0]! } == ["1", "2", "3", "4"])
        #expect(v2[1][1] == "bo@example.org")
        #expect(try await h.rows("SELECT id FROM main.crm.customers VERSION AS OF :v", params: [["name": "v", "value": "3", "type": "INT"]]).rows.map { $0[0]! } == ["1", "2", "4"])
        #expect(try await h.rows("SELECT id FROM `main`.`crm`.`customers` TIMESTAMP AS OF '2026-03-02T10:00:00Z'").rows.count == 4)
        let tooNew = try await h.execute("SELECT * FROM main.crm.customers VERSION AS OF 9")
        #expect(errorClass(tooNew) == "DELTA_VERSION_NOT_FOUND")
        #expect(errorMessage(tooNew)?.contains("Available versions: [0, 3]") == true)
        let vacuumed = try await h.execute("SELECT * FROM main.crm.vacuumed VERSION AS OF 1")
        #expect(errorClass(vacuumed) == "DELTA_VERSION_NOT_FOUND")
        #expect((vacuumed["status"] as? [String: Any])?["sql_state"] as? String == "22003")
    }

    @Test func describeHistoryIsNewestFirstWithDeltaColumns() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let (cols, rows) = try await h.rows("DESCRIBE HISTORY main.crm.customers")
        #expect(cols == [
            "version", "timestamp", "userId", "userName", "operation", "operationParameters", "job", "notebook",
            "clusterId", "readVersion", "isolationLevel", "isBlindAppend", "operationMetrics", "userMetadata", "engineInfo",
        ])
        #expect(rows.map { $0[0]! } == ["3", "2", "1", "0"])
        #expect(rows.map { $0[4]! } == ["DELETE", "MERGE", "WRITE", "CREATE TABLE"])
        #expect(rows[0][1] == "2026-03-03T10:00:00.000Z")
        #expect(rows[3][9] == nil)  // readVersion of v0
        // MAP columns are JSON text.
        let metrics = try JSONSerialization.jsonObject(with: Data(rows[1][12]!.utf8)) as! [String: String]
        #expect(metrics["numTargetRowsUpdated"] == "1")
        #expect(metrics["numTargetRowsInserted"] == "1")
        let props = try JSONSerialization.jsonObject(with: Data(rows[3][5]!.utf8)) as! [String: Any]
        #expect((props["properties"] as? String)?.contains("delta.enableChangeDataFeed") == true)
        let latest = try await h.rows("DESCRIBE HISTORY main.crm.customers LIMIT 1").rows
        #expect(latest.count == 1 && latest[0][0] == "3")
        let r = try await h.execute("DESCRIBE HISTORY main.crm.customers")
        let types = ((r["manifest"] as! [String: Any])["schema"] as! [String: Any])["columns"] as! [[String: Any]]
        #expect(types[0]["type_name"] as? String == "LONG")
        #expect(types[5]["type_text"] as? String == "MAP<STRING, STRING>")
        #expect(types[11]["type_name"] as? String == "BOOLEAN")
        let view = try await h.execute("DESCRIBE HISTORY main.crm.opted_in")
        #expect(errorClass(view) == "DELTA_CANNOT_DESCRIBE_VIEW_HISTORY")
    }

    @Test func whereOrderByLimitAndAliases() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let r = try await h.rows(
            "SELECT id AS customer, email FROM main.crm.customers WHERE consent_status = :c AND id >= 2 ORDER BY id DESC LIMIT 5",
            params: [["name": "c", "value": "Opted In"]])
        #expect(r.columns == ["customer", "email"])
        #expect(r.rows.map { $0[0]! } == ["4", "2"])
        let nulls = try await h.rows("SELECT id FROM main.crm.customers VERSION AS OF 1 WHERE score IS NULL")
        #expect(nulls.rows.map { $0[0]! } == ["3"])
        let inList = try await h.rows("SELECT id FROM main.crm.customers WHERE id IN (1, 4) OR email LIKE 'bo@%' ORDER BY 1")
        #expect(inList.rows.map { $0[0]! } == ["1", "2", "4"])
        let offset = try await h.rows("SELECT id FROM main.crm.customers ORDER BY id LIMIT 1 OFFSET 1")
        #expect(offset.rows.map { $0[0]! } == ["2"])
        let decimals = try await h.rows("SELECT id FROM main.crm.customers WHERE score > 5 ORDER BY score")
        #expect(decimals.rows.map { $0[0]! } == ["2", "1"])
        let ts = try await h.rows("SELECT id FROM main.crm.customers WHERE last_updated_at > '2026-03-01T12:00:00Z' ORDER BY id")
        #expect(ts.rows.map { $0[0]! } == ["2", "4"])
    }

    @Test func rowLimitTruncates() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let r = try await h.execute("SELECT * FROM main.crm.customers", extra: ["row_limit": 2])
        let m = r["manifest"] as! [String: Any]
        #expect(m["total_row_count"] as? Int == 2)
        #expect(m["truncated"] as? Bool == true)
    }

    @Test func inlineByteLimitFailsTheStatement() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100, inlineByteLimit: 100))
        let r = try await h.execute("SELECT * FROM main.crm.customers")
        #expect(state(r) == "FAILED")
        #expect(errorMessage(r)?.hasPrefix("Inline byte limit exceeded. Statements executed with disposition=INLINE can have a result size of at most 100 bytes.") == true)
        #expect((r["status"] as? [String: Any])?["sql_state"] == nil)
        let ext = try await h.execute("SELECT * FROM main.crm.customers", extra: ["disposition": "EXTERNAL_LINKS"])
        #expect(state(ext) == "SUCCEEDED")
    }

    @Test func informationSchemaAndShowAreFilteredByGrants() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let tables = try await h.rows(
            "SELECT table_catalog, table_schema, table_name, table_type, data_source_format FROM system.information_schema.tables ORDER BY table_name")
        #expect(tables.rows.map { $0[2]! } == ["customers", "legacy", "opted_in", "vacuumed"])
        #expect(tables.rows.first { $0[2] == "opted_in" }?[3] == "VIEW")
        #expect(tables.rows.first { $0[2] == "customers" }?[4] == "DELTA")
        let cols = try await h.rows(
            "SELECT column_name, ordinal_position, full_data_type, is_nullable FROM main.information_schema.columns WHERE table_schema = 'crm' AND table_name = :t ORDER BY ordinal_position",
            params: [["name": "t", "value": "customers"]])
        #expect(cols.rows.map { $0[0]! } == ["id", "email", "score", "consent_status", "last_updated_at"])
        #expect(cols.rows[0][1] == "1")
        #expect(cols.rows[0][3] == "NO")
        #expect(cols.rows[2][2] == "decimal(10,2)")
        let viewCols = try await h.rows("SELECT column_name FROM main.information_schema.columns WHERE table_name = 'opted_in'")
        #expect(viewCols.rows.map { $0[0]! } == ["customer_id", "email", "last_updated_at"])
        #expect(try await h.rows("SHOW CATALOGS").rows == [["main"]])
        #expect(try await h.rows("SHOW SCHEMAS IN main").rows.map { $0[0]! } == ["crm", "information_schema", "secret"])
        let show = try await h.rows("SHOW TABLES IN main.crm LIKE 'c*|l*'")
        #expect(show.columns == ["database", "tableName", "isTemporary"])
        #expect(show.rows.map { $0[1]! } == ["customers", "legacy"])
        // The secret schema is usable but its table carries no privilege: invisible, and reading it fails.
        #expect(try await h.rows("SHOW TABLES IN main.secret").rows.isEmpty)
        let denied = try await h.execute("SELECT * FROM main.secret.salaries")
        #expect(errorClass(denied) == "INSUFFICIENT_PERMISSIONS")
        #expect((denied["status"] as? [String: Any])?["sql_state"] as? String == "42501")
        let props = try await h.rows("SHOW TBLPROPERTIES main.crm.customers ('delta.enableChangeDataFeed')")
        #expect(props.rows == [["delta.enableChangeDataFeed", "true"]])
        let missing = try await h.rows("SHOW TBLPROPERTIES main.crm.legacy ('nope')")
        #expect(missing.rows[0][1] == "Table main.crm.legacy does not have property: nope")
    }

    @Test func sqlStateCanBeOmitted() async throws {
        let h = try Harness(configuration: .init(includeSQLState: false))
        let r = try await h.execute("SELECT * FROM main.crm.nope")
        #expect(errorClass(r) == "TABLE_OR_VIEW_NOT_FOUND")
        #expect((r["status"] as? [String: Any])?["sql_state"] == nil)
        #expect(errorMessage(r)?.contains("SQLSTATE: 42P01") == true)
    }

    @Test func selectWithoutFromReturnsOneRow() async throws {
        let h = try Harness()
        let r = try await h.rows("SELECT 1 AS one, 'x', :p AS p, NULL", params: [["name": "p", "value": "7", "type": "BIGINT"]])
        #expect(r.columns == ["one", "'x'", "p", "NULL"])
        #expect(r.rows == [["1", "x", "7", nil]])
        let types = ((try await h.execute("SELECT 1, NULL")["manifest"] as! [String: Any])["schema"] as! [String: Any])["columns"] as! [[String: Any]]
        #expect(types.map { $0["type_name"] as! String } == ["INT", "NULL"])
        // No input columns at all: nothing to suggest, as Spark says.
        let bad = try await h.execute("SELECT nope")
        #expect(errorClass(bad) == "UNRESOLVED_COLUMN.WITHOUT_SUGGESTION")
    }

    @Test func requestLogNeverSeesSecrets() async throws {
        final class Lines: @unchecked Sendable {
            let lock = NSLock()
            var lines: [String] = []
        }
        let lines = Lines()
        var config = Simulator.Configuration(rowsPerChunk: 100)
        config.requestLog = { line in lines.lock.withLock { lines.lines.append(line) } }
        let h = try Harness(configuration: config)
        let r = try await h.execute("SELECT id FROM main.crm.customers", extra: ["disposition": "EXTERNAL_LINKS"])
        let u = URL(string: (((r["result"] as! [String: Any])["external_links"] as! [[String: Any]])[0]["external_link"] as! String))!
        _ = try await h.send("GET", u.path + "?" + u.query!)
        let all = lines.lock.withLock { lines.lines }
        #expect(all.count == 2)
        #expect(all[0].hasPrefix("POST /api/2.0/sql/statements 200 "))
        #expect(all.allSatisfy { !$0.contains("dapi-test-token") && !$0.contains("Signature") })
    }

    @Test func aggregatesAndScalarFunctions() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let agg = try await h.rows("SELECT COUNT(*), count(score), max(last_updated_at), min(score), 'x' AS tag FROM main.crm.customers VERSION AS OF 2")
        #expect(agg.columns == ["count(1)", "count(score)", "max(last_updated_at)", "min(score)", "tag"])
        #expect(agg.rows == [["4", "3", "2026-03-02T09:15:00.000Z", "1.00", "x"]])
        let r = try await h.execute("SELECT count(*) AS n, max(id) FROM main.crm.customers WHERE consent_status = 'Opted In'")
        let cols = ((r["manifest"] as! [String: Any])["schema"] as! [String: Any])["columns"] as! [[String: Any]]
        #expect(cols.map { $0["type_name"] as! String } == ["LONG", "LONG"])
        #expect(((r["result"] as! [String: Any])["data_array"] as! [[Any]])[0] as? [String] == ["3", "4"])
        let empty = try await h.rows("SELECT count(*), max(id) FROM main.crm.customers WHERE id > 100")
        #expect(empty.rows == [["0", nil]])
        let micros = try await h.rows(
            "SELECT id, unix_micros(_commit_timestamp) AS us, lower(email) FROM table_changes('main.crm.customers', 2, 2) WHERE _change_type = 'insert'")
        #expect(micros.columns == ["id", "us", "lower(email)"])
        #expect(micros.rows == [["4", "1772442900000000", "di \"quoted\" @example.com"]])
        let ordered = try await h.rows("SELECT id, upper(email) FROM main.crm.customers ORDER BY 2 DESC")
        #expect(ordered.rows.map { $0[0]! } == ["4", "2", "1"])
        #expect(errorClass(try await h.execute("SELECT id, count(*) FROM main.crm.customers")) == "MISSING_GROUP_BY")
        #expect(errorClass(try await h.execute("SELECT frobnicate(id) FROM main.crm.customers")) == "UNRESOLVED_ROUTINE")
        #expect(errorClass(try await h.execute("SELECT id FROM main.crm.customers WHERE count(*) > 1")) == "INVALID_WHERE_CONDITION")
        #expect(errorClass(try await h.execute("SELECT max(count(id)) FROM main.crm.customers")) == "NESTED_AGGREGATE_FUNCTION")
        #expect(errorClass(try await h.execute("SELECT lower() FROM main.crm.customers")) == "WRONG_NUM_ARGS.WITHOUT_SUGGESTION")
        let now = try await h.rows("SELECT current_timestamp()").rows[0][0]!
        #expect(now.hasSuffix("Z") && now.count == 24)
    }

    @Test func countStarOverLargeGeneratedTablesIsCheap() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        try h.sim.addSyntheticTable(name: "main.crm.big", rows: 2_000_000, updateVersions: 1)
        #expect(try await h.rows("SELECT count(*) FROM main.crm.big").rows == [["2000000"]])
        #expect(try await h.rows("SELECT count(*) FROM table_changes('main.crm.big', 2)").rows == [["40000"]])
        #expect(errorClass(try await h.execute("SELECT max(email) FROM main.crm.big")) == "UNSUPPORTED_FEATURE.SIMULATOR")
    }

    @Test func describeTableShowColumnsAndCasts() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let d = try await h.rows("DESCRIBE TABLE main.crm.customers")
        #expect(d.columns == ["col_name", "data_type", "comment"])
        #expect(d.rows.map { $0[1]! } == ["bigint", "string", "decimal(10,2)", "string", "timestamp"])
        #expect(try await h.rows("DESC main.crm.opted_in").rows.map { $0[0]! } == ["customer_id", "email", "last_updated_at"])
        #expect(try await h.rows("SHOW COLUMNS IN customers IN main.crm").rows.map { $0[0]! } == ["id", "email", "score", "consent_status", "last_updated_at"])
        let c = try await h.rows(
            "SELECT id, CAST(id AS STRING) AS s, CAST(score AS INT) AS i FROM main.crm.customers WHERE last_updated_at > TIMESTAMP '2026-03-01 12:00:00' AND id = CAST('2' AS BIGINT)")
        #expect(c.rows == [["2", "2", "7"]])
        let tc = try await h.rows("SELECT id FROM table_changes('main.crm.customers', TIMESTAMP '2026-03-03 00:00:00')")
        #expect(tc.rows.map { $0[0]! } == ["3"])
        #expect(errorClass(try await h.execute("SELECT CAST(email AS INT) FROM main.crm.customers")) == "CAST_INVALID_INPUT")
    }
}
