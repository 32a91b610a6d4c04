import CDFSyncCore
import Testing

@Suite("SQL builder")
struct SQLBuilderTests {
    @Test func parsesPlainAndQuotedNames() throws {
        let a = try QualifiedName(parsing: "main.research.participants")
        #expect(a == QualifiedName(catalog: "main", schema: "research", table: "participants"))
        let b = try QualifiedName(parsing: "`my cat`.`s.x`.`we``ird`")
        #expect(b == QualifiedName(catalog: "my cat", schema: "s.x", table: "we`ird"))
        #expect(b.quoted == "`my cat`.`s.x`.`we``ird`")
    }

    @Test(arguments: ["main.research", "a..b", "a.b.c.d", "", "`a.b.c", "a`b`.c.d", "`a`x.b.c"])
    func rejectsMalformedNames(_ text: String) {
        #expect(throws: SQLBuildError.self) { try QualifiedName(parsing: text) }
    }

    @Test(arguments: [
        "x`; DROP TABLE t; --", "a'b", "a\\'b", "/* c */", "`", "``", "t;DELETE FROM u", "a\nb",
    ])
    func hostileIdentifiersStayInsideTheirQuotes(_ name: String) {
        let q = SQL.quoteIdentifier(name)
        #expect(q.hasPrefix("`") && q.hasSuffix("`"))
        // Un-quoting gives back exactly the name: every inner backtick is doubled, so none ends the identifier.
        let inner = q.dropFirst().dropLast()
        var i = inner.startIndex
        var out = ""
        while i < inner.endIndex {
            let c = inner[i]
            if c == "`" {
                let n = inner.index(after: i)
                #expect(n < inner.endIndex && inner[n] == "`", "a lone backtick would end the identifier")
                out.append("`")
                i = inner.index(after: n)
            } else {
                out.append(c)
                i = inner.index(after: i)
            }
        }
        #expect(out == name)
    }

    @Test(arguments: ["it's", "a\\'; DROP TABLE x; --", "\\", "''", "back\\\\slash"])
    func stringLiteralsCannotBeClosedEarly(_ text: String) {
        let lit = SQL.stringLiteral(text)
        #expect(lit.hasPrefix("'") && lit.hasSuffix("'"))
        // Scan as Databricks does (backslash escapes the next char): the literal must end only at the last quote.
        let chars = Array(lit.dropFirst())
        var i = 0
        var decoded = ""
        while i < chars.count {
            if chars[i] == "\\" {
                decoded.append(chars[i + 1])
                i += 2
                continue
            }
            if chars[i] == "'" {
                #expect(i == chars.count - 1, "literal closed early at \(i) in \(lit)")
                break
            }
            decoded.append(chars[i])
            i += 1
        }
        #expect(decoded == text)
    }

    @Test func tableChangesStatementQuotesEverything() {
        let t = QualifiedName(catalog: "main", schema: "re`s", table: "p")
        let sql = SQL.tableChanges(of: t, columns: ["participant_id", "e`mail"], startVersion: 3, endVersion: 9)
        #expect(sql == "SELECT `participant_id`, `e``mail`, `_change_type`, `_commit_version`, `_commit_timestamp` FROM table_changes('`main`.`re``s`.`p`', 3, 9) ORDER BY `_commit_version`")
        #expect(SQL.latestVersion(of: t) == "DESCRIBE HISTORY `main`.`re``s`.`p` LIMIT 1")
        #expect(SQL.snapshot(of: t, columns: nil, version: 4) == "SELECT * FROM `main`.`re``s`.`p` VERSION AS OF 4")
    }
}
