import CDFSyncCore
import Foundation
import Testing

/// One case of `Tests/hostile-sql/corpus.json`.
struct HostileSQLCase: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var sql: String
    var verdict: String
    var normalized: String?
    var token: String?
    var line: Int?
    var column: Int?
    var why: String

    var testDescription: String { name }

    static let all: [HostileSQLCase] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("hostile-sql/corpus.json")
        struct Doc: Decodable { var cases: [HostileSQLCase] }
        // A missing or broken corpus fails every test that reads it (an empty list would pass vacuously).
        guard let data = try? Data(contentsOf: url), let doc = try? JSONDecoder().decode(Doc.self, from: data) else {
            return [HostileSQLCase(name: "corpus unreadable at \(url.path)", sql: "", verdict: "unreadable", why: "")]
        }
        return doc.cases
    }()
}

@Suite("Read-only SQL guard")
struct ReadOnlySQLGuardTests {
    @Test(arguments: HostileSQLCase.all)
    func corpusVerdict(_ c: HostileSQLCase) throws {
        let verdict = ReadOnlySQLGuard.check(c.sql)
        switch (c.verdict, verdict) {
        case ("accept", .success(let g)):
            #expect(g.text == c.normalized, "\(c.why)")
        case ("refuse", .failure(let r)):
            #expect(r.token == c.token, "\(c.why)")
            #expect(r.line == c.line && r.column == c.column, "\(c.why): at \(r.line):\(r.column)")
            // One line, naming the token and its place, and saying what is allowed.
            #expect(!r.description.contains("\n") && !r.description.contains("\r"))
            #expect(r.description.hasPrefix("custom SQL refused at line \(r.line), column \(r.column) ('\(r.token)'): "))
            #expect(r.description.hasSuffix(SQLGuardRefusal.allowed))
        default:
            Issue.record("\(c.name): expected \(c.verdict), got \(verdict) — \(c.why)")
        }
    }

    @Test func corpusCoversBothVerdicts() {
        let cases = HostileSQLCase.all
        #expect(cases.filter { $0.verdict == "accept" }.count >= 20)
        #expect(cases.filter { $0.verdict == "refuse" }.count >= 60)
    }

    @Test func refusalsSayWhatIsWrong() throws {
        func problem(_ sql: String) -> String {
            guard case .failure(let r) = ReadOnlySQLGuard.check(sql) else { return "accepted" }
            return r.problem
        }
        #expect(problem("SELECT 1; DROP TABLE x").contains("exactly one statement"))
        #expect(problem("WITH a AS (SELECT 1) DELETE FROM t").contains("DELETE is not allowed: it writes data"))
        #expect(problem("SELECT * FROM my_tvf(1)").contains(
            "the table-valued function my_tvf is not allowed in FROM (allowed: explode, explode_outer, inline, inline_outer, posexplode, posexplode_outer, range, stack)"))
        #expect(problem("SELECT 1) UNION (SELECT 2").contains("closes a parenthesis the text never opened"))
        #expect(problem("SELECT 1\u{FF1B}").contains("non-ASCII character outside a string"))
        #expect(problem("SELECT '${x}'").contains("Spark substitutes"))
        #expect(problem("UPDATE t SET a = 1").contains("must start with SELECT or WITH"))
        // The example in docs/pipelines.md, word for word.
        guard case .failure(let stacked) = ReadOnlySQLGuard.check("SELECT 1; DROP TABLE x") else {
            Issue.record("accepted")
            return
        }
        #expect(stacked.description
            == "custom SQL refused at line 1, column 9 (';'): a ';' ends the statement here and more follows: custom SQL is exactly one statement (a single trailing ';' is fine). Custom SQL is exactly one SELECT (or WITH … SELECT) that only reads tables and views; the engine adds its own paging and parameters.")
        // A long token is shortened; invisible characters inside one are spelled out.
        guard case .failure(let r) = ReadOnlySQLGuard.check("SELECT 1; '" + String(repeating: "x", count: 100) + "'") else {
            Issue.record("accepted")
            return
        }
        #expect(r.token == ";")
        guard case .failure(let long) = ReadOnlySQLGuard.check("SELECT * FROM " + String(repeating: "t", count: 100) + "(1)")
        else {
            Issue.record("accepted")
            return
        }
        #expect(long.token.count == 41 && long.token.hasSuffix("…"))
    }

    @Test func everyForbiddenKeywordIsRefusedAndQuotingItIsFine() {
        for (word, _) in ReadOnlySQLGuard.forbiddenKeywords {
            for spelling in [word, word.lowercased()] {
                guard case .failure(let r) = ReadOnlySQLGuard.check("SELECT a FROM t WHERE \(spelling) = 1") else {
                    Issue.record("\(spelling) accepted")
                    continue
                }
                #expect(r.token == spelling && r.column == 23)
            }
            #expect((try? ReadOnlySQLGuard.check("SELECT `\(word)` FROM t WHERE '\(word)' = '' -- \(word)").get()) != nil)
        }
    }

    @Test func forbiddenFunctionsAreRefusedAnywhere() {
        for name in ReadOnlySQLGuard.forbiddenFunctions.sorted() + ["read_anything", "ai_gen", "cloud_files_state"] {
            for sql in ["SELECT \(name)(x) FROM t", "SELECT * FROM \(name)('x')", "SELECT a FROM t WHERE lower(\(name)(a)) = ''",
                        "SELECT * FROM t JOIN \(name)(1) ON true"]
            {
                #expect(throws: SQLGuardRefusal.self, "\(sql)") { try ReadOnlySQLGuard.check(sql).get() }
            }
            // As a plain column name, unquoted or quoted, it is only a name.
            #expect((try? ReadOnlySQLGuard.check("SELECT \(name), `\(name)` FROM t").get()) != nil, "\(name)")
        }
        for name in ReadOnlySQLGuard.tableValuedFunctions {
            #expect((try? ReadOnlySQLGuard.check("SELECT * FROM \(name)(1) AS g").get()) != nil, "\(name)")
        }
    }

    @Test func acceptedTextIsNormalised() throws {
        let g = try ReadOnlySQLGuard.check("\n  /* lead */ SELECT a\nFROM t ; -- trailing\n/* more */ \n").get()
        #expect(g.text == "SELECT a\nFROM t")
        #expect(g.description == g.text)
        // Normalising is idempotent.
        #expect(try ReadOnlySQLGuard.check(g.text).get() == g)
    }
}

@Suite("SQL tokenizer")
struct SQLTokenizerTests {
    func kinds(_ sql: String) throws -> [String] {
        try SQLTokenizer.tokenize(sql).get().map { "\($0.kind):\($0.text)" }
    }

    @Test func readsQuotesCommentsAndNumbersAsSpark() throws {
        #expect(try kinds("SELECT 'a''b', 'c\\'d', \"e\\\"f\", `x``y`, r'\\', R\"'\"") == [
            "word:SELECT", "string:'a''b'", "symbol:,", "string:'c\\'d'", "symbol:,", "string:\"e\\\"f\"", "symbol:,",
            "quotedIdentifier:`x``y`", "symbol:,", "string:r'\\'", "symbol:,", "string:R\"'\"",
        ])
        #expect(try kinds("1 1.5 .5 1e3 1.5E-3 10L 2BD 1a") == [
            "number:1", "number:1.5", "number:.5", "number:1e3", "number:1.5E-3", "number:10L", "number:2BD", "number:1a",
        ])
        #expect(try kinds("a <=> b <> c != d :: e -> f => g || h ? :p :`q r` x:y") == [
            "word:a", "symbol:<=>", "word:b", "symbol:<>", "word:c", "symbol:!=", "word:d", "symbol:::", "word:e",
            "symbol:->", "word:f", "symbol:=>", "word:g", "symbol:||", "word:h", "parameter:?", "parameter::p",
            "parameter::`q r`", "word:x", "parameter::y",
        ])
        // Nested comments; `/*+` is a hint, also inside a comment (where it opens no level); `--` to CR or LF, and
        // a backslash before LF continues it.
        #expect(try kinds("a /* b /* c */ d */ e /* /*+ */ f /*+ g */ h -- i\rj -- k\\\nl\nm") == [
            "word:a", "word:e", "word:f", "symbol:/*+", "word:g", "symbol:*/", "word:h", "word:j", "word:m",
        ])
        // Spark's Unicode spaces separate tokens.
        #expect(try kinds("a\u{00A0}b\u{2003}c\u{3000}d\u{2028}e") == ["word:a", "word:b", "word:c", "word:d", "word:e"])
    }

    @Test func positionsAreLinesAndCharacters() throws {
        let t = try SQLTokenizer.tokenize("SELECT 'é'\n  , `ĉ`\u{00A0}x").get()
        #expect(t.map(\.line) == [1, 1, 2, 2, 2])
        #expect(t.map(\.column) == [1, 8, 3, 5, 9])
        #expect(t.map(\.utf8Range) == [0..<6, 7..<11, 14..<15, 16..<20, 22..<23])
        // …and the first character outside quotes it cannot read.
        guard case .failure(let e) = SQLTokenizer.tokenize("SELECT 'é'\n  , ĉ") else {
            Issue.record("read a non-ASCII letter outside quotes")
            return
        }
        #expect(e.line == 2 && e.column == 5)
        #expect(e.token == "U+0109 LATIN SMALL LETTER C WITH CIRCUMFLEX")
    }

    @Test(arguments: ["'abc", "\"abc\\\"", "`abc``", "/* a /* b */", "r'abc", "R\"abc", ":`abc", "'abc\\"])
    func unterminatedTextIsAnError(_ sql: String) {
        #expect(throws: SQLLexicalError.self) { try SQLTokenizer.tokenize("SELECT " + sql).get() }
    }
}

@Suite("Custom SQL wrapping")
struct CustomSQLWrappingTests {
    let source = try! ReadOnlySQLGuard.check("SELECT p.id, p.email, p.updated_at FROM people p -- the panel\n;").get()

    @Test func snapshotWrapsTheTextAlone() {
        #expect(SQL.customSnapshot(source, columns: nil) == "SELECT * FROM (\nSELECT p.id, p.email, p.updated_at FROM people p\n) AS src")
        let f = SQL.filterConditions([Pipeline.Filter(column: "email", op: .like, value: .scalar("%@example.com"))])
        #expect(SQL.customSnapshot(source, columns: ["id", "e`mail"], conditions: f.sql)
            == "SELECT `id`, `e``mail` FROM (\nSELECT p.id, p.email, p.updated_at FROM people p\n) AS src WHERE (`email` LIKE :f0)")
    }

    @Test func watermarkPagesAreKeysetPagesWithBoundParameters() {
        let first = SQL.customWatermarkPage(
            source, columns: nil, cursor: "updated_at", key: "id", upperBound: "2026-03-01T00:00:00Z", after: nil, pageSize: 500)
        #expect(first.sql == """
            SELECT * FROM (
            SELECT p.id, p.email, p.updated_at FROM people p
            ) AS src WHERE (`updated_at` <= :wm_upper) ORDER BY `updated_at`, `id` LIMIT :n
            """)
        #expect(first.parameters == [
            BoundParameter(name: "wm_upper", value: "2026-03-01T00:00:00Z", type: "TIMESTAMP"),
            BoundParameter(name: "n", value: "500", type: "INT"),
        ])
        let next = SQL.customWatermarkPage(
            source, columns: ["id", "updated_at"], cursor: "updated_at", key: "id", cursorType: "TIMESTAMP",
            conditions: ["`id` IS NOT NULL"], upperBound: nil, after: ("2026-01-02T00:00:00Z", "7'; DROP"), pageSize: 0)
        #expect(next.sql.hasSuffix(
            ") AS src WHERE (`id` IS NOT NULL) AND (`updated_at` > :wm_from OR (`updated_at` = :wm_from AND `id` > :wm_key)) ORDER BY `updated_at`, `id` LIMIT :n"))
        // Values are parameters, never text: the hostile key is only a parameter value.
        #expect(!next.sql.contains("DROP"))
        #expect(next.parameters.last == BoundParameter(name: "n", value: "1", type: "INT"))
        #expect(next.parameters.contains(BoundParameter(name: "wm_key", value: "7'; DROP", type: "STRING")))
        // No bound and no start: NULL cursors are left out explicitly.
        let open = SQL.customWatermarkPage(source, columns: nil, cursor: "updated_at", key: "id", upperBound: nil, after: nil, pageSize: 10)
        #expect(open.sql.contains("WHERE (`updated_at` IS NOT NULL) ORDER BY"))
    }

    @Test func testRunIsALimitedSelectAll() {
        let t = SQL.customTestRun(source, limit: 20)
        #expect(t.sql == "SELECT * FROM (\nSELECT p.id, p.email, p.updated_at FROM people p\n) AS src LIMIT :n")
        #expect(t.parameters == [BoundParameter(name: "n", value: "20", type: "INT")])
    }
}
