import Foundation
import Testing
@testable import WarehouseSimulator

@Suite struct ParserTests {
    @Test(arguments: [
        "INSERT INTO main.crm.customers VALUES (1)",
        "SELECT a FROM t JOIN u t.id = u.id",
        "SELECT count(DISTINCT id) FROM main.crm.customers",
        "SELECT row_number() OVER (ORDER BY id) FROM main.crm.customers",
        "SELECT id FROM main.crm.customers GROUP BY id",
        "SELECT id FROM main.crm.customers WHERE id = ?",
        "SELECT DISTINCT id FROM main.crm.customers",
        "SELECT id FROM (SELECT id FROM main.crm.customers",
        "SELECT id FROM (main.crm.customers)",
        "WITH a AS SELECT 1 SELECT * FROM a",
        "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
        "SELECT id FROM main.crm.customers UNION SELECT id FROM main.crm.legacy",
        "SELECT id FROM a.b.c.d",
        "SELECT id, FROM main.crm.customers",
        "SELECT 'unterminated FROM main.crm.customers",
        "SELECT id FROM main.crm.customers; SELECT 1",
        "UPDATE main.crm.customers SET id = 1",
        "DESCRIBE TABLE EXTENDED main.crm.customers",
        "SELECT id FROM main.crm.customers WHERE id IN (SELECT id FROM main.crm.legacy)",
        "SELECT id::string FROM main.crm.customers",
        "SELECT 1L FROM main.crm.customers",
        "",
    ])
    func unsupportedSQLIsASyntaxError(sql: String) async throws {
        #expect(throws: SQLError.self) { try Parser.parse(sql) }
        do {
            _ = try Parser.parse(sql)
        } catch {
            #expect(error.errorClass == "PARSE_SYNTAX_ERROR")
            #expect(error.sqlState == "42601")
            #expect(error.message.hasPrefix("\n[PARSE_SYNTAX_ERROR] Syntax error at or near "))
            #expect(error.message.contains("SQLSTATE: 42601 (line "))
            #expect(error.message.contains("== SQL =="))
        }
    }

    @Test func syntaxErrorPointsAtTheToken() async throws {
        do {
            _ = try Parser.parse("INSER INTO x VALUES (1)")
            Issue.record("expected a syntax error")
        } catch {
            #expect(error.message == "\n[PARSE_SYNTAX_ERROR] Syntax error at or near 'INSER'. SQLSTATE: 42601 (line 1, pos 0)\n\n== SQL ==\nINSER INTO x VALUES (1)\n^^^\n")
        }
        do {
            _ = try Parser.parse("SELECT a\nFROM t WHERE")
            Issue.record("expected a syntax error")
        } catch {
            #expect(error.message.contains("at or near end of input. SQLSTATE: 42601 (line 2, pos 12)"))
        }
    }

    @Test func acceptsTheSupportedSurface() async throws {
        let ok = [
            "select * from main.crm.customers",
            "SELECT `id`, `e``mail` AS x FROM `main`.`crm`.`customers` VERSION AS OF 3;",
            "SELECT * FROM table_changes('`main`.`crm`.`cust.omers`', :start, :end) ORDER BY _commit_version",
            "SELECT id FROM t WHERE a = 'it''s' AND (b <> 2 OR c IS NOT NULL) AND d NOT IN ('x', \"y\") AND e LIKE 'a%' ORDER BY 1 DESC NULLS LAST LIMIT 10 OFFSET 5",
            "DESCRIBE HISTORY main.crm.customers LIMIT 1",
            "describe history `main`.crm.customers",
            "SHOW TBLPROPERTIES main.crm.customers (delta.enableChangeDataFeed)",
            "SHOW TABLES IN main.crm LIKE 'c*'",
            "SHOW SCHEMAS", "SHOW CATALOGS LIKE 'm*'",
            "SELECT id FROM t TIMESTAMP AS OF '2026-01-01' -- comment\n",
            "/* leading */ SELECT id FROM t WHERE x BETWEEN 1 AND -2",
        ]
        for sql in ok { _ = try Parser.parse(sql) }
    }

    @Test func unknownCastTypeIsUnsupportedDatatype() async throws {
        do {
            _ = try Parser.parse("SELECT CAST(id AS BLOB) FROM t")
            Issue.record("expected an error")
        } catch {
            #expect(error.message == "[UNSUPPORTED_DATATYPE] Unsupported data type \"BLOB\". SQLSTATE: 0A000")
        }
    }

    @Test func lexerHandlesQuotesAndEscapes() async throws {
        let toks = try Lexer("SELECT 'a''b', 'c\\'d', `x``y`, :p1, -- c\n 1.5e3").tokenize()
        #expect(toks.filter { $0.kind == .string }.map(\.text) == ["a'b", "c'd"])
        #expect(toks.first { $0.kind == .quotedIdentifier }?.text == "x`y")
        #expect(toks.first { $0.kind == .parameter }?.text == "p1")
        #expect(toks.first { $0.kind == .decimal }?.text == "1.5e3")
    }

    @Test func tableNamesSplitWithBackticks() async throws {
        #expect(try TableName.splitParts("`my.cat`.sch.`t``x`") == ["my.cat", "sch", "t`x"])
        #expect(throws: (any Error).self) { try TableName(parsing: "a..b") }
        #expect(throws: (any Error).self) { try TableName(parsing: "a.b") }
    }

    @Test func typeTextMapsToTypeName() async throws {
        let cases: [(String, String, String)] = [
            ("BIGINT", "BIGINT", "LONG"), ("int", "INT", "INT"), ("decimal(18, 2)", "DECIMAL(18,2)", "DECIMAL"),
            ("TINYINT", "TINYINT", "BYTE"), ("SMALLINT", "SMALLINT", "SHORT"), ("VOID", "VOID", "NULL"),
            ("ARRAY<STRING>", "ARRAY<STRING>", "ARRAY"), ("MAP<STRING, STRING>", "MAP<STRING, STRING>", "MAP"),
            ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ", "TIMESTAMP_NTZ"), ("INTERVAL DAY TO SECOND", "INTERVAL DAY TO SECOND", "INTERVAL"),
        ]
        for (input, text, name) in cases {
            let t = try SQLType(parsing: input)
            #expect(t.text == text)
            #expect(t.name == name)
        }
        #expect(try SQLType(parsing: "DECIMAL(18,2)").precision == 18)
        #expect(throws: (any Error).self) { try SQLType(parsing: "BLOB") }
    }

    @Test func timestampsParseAndFormat() async throws {
        #expect(try Timestamp.parseMillis("1970-01-01T00:00:00Z") == 0)
        #expect(try Timestamp.parseMillis("2021-06-15T12:34:56.789-07:00") == Timestamp.parseMillis("2021-06-15T19:34:56.789Z"))
        #expect(Timestamp.format(millis: try Timestamp.parseMillis("2026-03-02 09:15:00")) == "2026-03-02T09:15:00.000Z")
        #expect(Timestamp.format(millis: 951_782_400_123) == "2000-02-29T00:00:00.123Z")
        #expect(throws: (any Error).self) { try Timestamp.parseMillis("2026-13-01") }
    }

    @Test func workspaceValidationRejectsBadDocuments() async throws {
        let bad = [
            #"{"format":"cdfsync-sim/2"}"#,
            #"{"format":"cdfsync-sim/1","tables":[{"name":"a.b","columns":[{"name":"x","type":"INT"}]}]}"#,
            #"{"format":"cdfsync-sim/1","tables":[{"name":"a.b.c","columns":[{"name":"x","type":"INT"}],"commits":[{"version":1,"timestamp":"2026-01-01T00:00:00Z","operation":"WRITE"}]}]}"#,
            #"{"format":"cdfsync-sim/1","tables":[{"name":"a.b.c","columns":[{"name":"x","type":"INT"}],"commits":[{"version":0,"timestamp":"2026-01-01T00:00:00Z","operation":"WRITE","insert":[["1","2"]]}]}]}"#,
            #"{"format":"cdfsync-sim/1","tables":[{"name":"a.b.c","columns":[{"name":"x","type":"INT","nullable":false}],"commits":[{"version":0,"timestamp":"2026-01-01T00:00:00Z","operation":"WRITE","insert":[[null]]}]}]}"#,
            #"{"format":"cdfsync-sim/1","tables":[{"name":"a.b.c","columns":[{"name":"x","type":"INT"}],"commits":[{"version":0,"timestamp":"2026-01-01T00:00:00Z","operation":"WRITE"},{"version":1,"timestamp":"2025-01-01T00:00:00Z","operation":"WRITE"}]}]}"#,
            #"{"format":"cdfsync-sim/1","tables":[{"name":"a.b.c","columns":[{"name":"x","type":"INT"}],"commits":[{"version":0,"timestamp":"2026-01-01T00:00:00Z","operation":"DELETE","delete":[["1"]]}]}]}"#,
        ]
        for doc in bad {
            #expect(throws: (any Error).self, "\(doc)") {
                let ws = try Workspace.load(data: Data(doc.utf8))
                _ = try Simulator(workspace: ws)
            }
        }
    }

    @Test func demoWorkspaceLoads() async throws {
        let ws = try Workspace.load(path: Harness.fixture("demo-workspace.json"))
        let sim = try Simulator(workspace: ws)
        #expect(sim.latestVersion(table: "main.research.participants") == 6)
        let more = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Harness.fixture("demo-commits-2.json")))) as! [String: Any]
        for c in more["commits"] as! [[String: Any]] {
            try sim.appendCommit(table: more["table"] as! String, Commit.decode(JSONSerialization.data(withJSONObject: c)))
        }
        #expect(sim.latestVersion(table: "main.research.participants") == 9)
    }

    @Test func demoCommitsCanBePostedAsOneDocument() async throws {
        let h = try Harness(workspace: try Workspace.load(path: Harness.fixture("demo-workspace.json")))
        let body = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Harness.fixture("demo-commits-2.json"))))
        let r = try await h.call("POST", "/_sim/commits", json: body, token: "sim-admin")
        #expect(r.status == 200)
        #expect(r.json["versions"] as? [Int] == [7, 8, 9])
        #expect(try await h.call("POST", "/_sim/commits", json: body, token: "sim-admin").status == 409)
        h.token = "dapi-demo-token"
        let changes = try await h.execute(
            "SELECT _change_type FROM table_changes('main.research.participants', 7, 9)",
            extra: ["warehouse_id": "8a1c2f3d4e5b6a70"])
        let m = changes["manifest"] as! [String: Any]
        #expect(m["total_row_count"] as? Int == 10 + 2 + 2 * 8 + 2)
    }
}
