import Foundation

/// Recursive-descent parser for the SQL the simulator understands. Anything else is a
/// `PARSE_SYNTAX_ERROR` at the first token it cannot take.
struct Parser {
    let sql: String
    private let tokens: [Token]
    private var pos = 0
    private let bytes: [UInt8]

    init(_ sql: String) throws(SQLError) {
        self.sql = sql
        self.bytes = Array(sql.utf8)
        self.tokens = try Lexer(sql).tokenize()
    }

    static func parse(_ sql: String) throws(SQLError) -> Statement {
        var p = try Parser(sql)
        return try p.parseStatement()
    }

    /// Spark's syntax error: `[PARSE_SYNTAX_ERROR] Syntax error at or near 'X'. SQLSTATE: 42601 (line l, pos p)`
    /// followed by the `== SQL ==` excerpt.
    static func syntaxError(sql: String, offset: Int, near: String?, bytes: [UInt8]) -> SQLError {
        let what = near.map { "'\($0)'" } ?? "end of input"
        return parseError("PARSE_SYNTAX_ERROR", "Syntax error at or near \(what).", sql: sql, offset: offset, bytes: bytes)
    }

    /// A Spark `ParseException`: a leading newline, `[CLASS] text SQLSTATE: 42601`, then ` (line l, pos p)` (`pos`
    /// counts characters from the start of the line, from 0) and the `== SQL ==` excerpt with a marker under it.
    static func parseError(_ errorClass: String, _ text: String, sql: String, offset: Int, bytes: [UInt8]) -> SQLError {
        var line = 1
        var lineStart = 0
        var k = 0
        while k < offset && k < bytes.count {
            if bytes[k] == 10 {
                line += 1
                lineStart = k + 1
            }
            k += 1
        }
        // Characters, not bytes: a UTF-8 continuation byte does not start one.
        let col = bytes[lineStart..<min(offset, bytes.count)].reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
        var e = SQLError(errorClass, "42601", text)
        e.leadingNewline = true
        let lines = sql.split(separator: "\n", omittingEmptySubsequences: false)
        var excerpt = ""
        for (idx, l) in lines.enumerated() {
            excerpt += l + "\n"
            if idx == line - 1 { excerpt += String(repeating: "-", count: max(col, 0)) + "^^^\n" }
        }
        e.suffix = " (line \(line), pos \(col))\n\n== SQL ==\n" + excerpt
        return e
    }

    /// How deep parentheses, subqueries and NOT chains may nest: the parser is recursive, and a statement of a
    /// million `(` must fail, not overflow the stack.
    static let maxDepth = 200
    private var depth = 0

    private mutating func enter() throws(SQLError) {
        depth += 1
        guard depth <= Self.maxDepth else {
            throw SQLError(
                "UNSUPPORTED_FEATURE.SIMULATOR", "0A000",
                "The warehouse simulator does not support expressions or subqueries nested more than \(Self.maxDepth) deep.")
        }
    }

    private mutating func leave() { depth -= 1 }

    private var current: Token { tokens[pos] }

    private func error(at t: Token? = nil) -> SQLError {
        let tok = t ?? current
        return Self.syntaxError(
            sql: sql, offset: tok.offset, near: tok.kind == .end ? nil : tokenText(tok), bytes: bytes)
    }

    private func tokenText(_ t: Token) -> String {
        switch t.kind {
        case .string: return "'" + t.text + "'"
        case .quotedIdentifier: return "`" + t.text + "`"
        case .parameter: return ":" + t.text
        default: return t.text
        }
    }

    private mutating func advance() -> Token {
        let t = tokens[pos]
        if t.kind != .end { pos += 1 }
        return t
    }

    private mutating func accept(_ keyword: String) -> Bool {
        if current.isKeyword(keyword) {
            pos += 1
            return true
        }
        return false
    }

    private mutating func acceptSymbol(_ s: String) -> Bool {
        if current.isSymbol(s) {
            pos += 1
            return true
        }
        return false
    }

    private mutating func expect(_ keyword: String) throws(SQLError) {
        guard accept(keyword) else { throw error() }
    }

    private mutating func expectSymbol(_ s: String) throws(SQLError) {
        guard acceptSymbol(s) else { throw error() }
    }

    /// Words that end an expression or a select item and so cannot be bare aliases.
    private static let reserved: Set<String> = [
        "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "AND", "OR", "NOT", "AS", "IS", "IN", "LIKE", "BETWEEN",
        "SELECT", "UNION", "JOIN", "ON", "GROUP", "HAVING", "VERSION", "TIMESTAMP", "ASC", "DESC", "NULLS", "INNER",
        "LEFT", "RIGHT", "FULL", "CROSS", "WINDOW", "QUALIFY", "EXCEPT", "INTERSECT", "DISTINCT", "ALL", "CASE",
        "WHEN", "THEN", "ELSE", "END", "NULL", "TRUE", "FALSE", "FOR", "LATERAL", "TABLESAMPLE", "USING", "NATURAL",
        "WITH", "OUTER", "SEMI", "ANTI", "MINUS", "PIVOT", "UNPIVOT",
    ]

    private func isReserved(_ t: Token) -> Bool { t.kind == .identifier && Self.reserved.contains(t.text.uppercased()) }

    mutating func parseStatement() throws(SQLError) -> Statement {
        let stmt: Statement
        if current.isKeyword("SELECT") || current.isKeyword("WITH") {
            stmt = .select(try parseQuery())
        } else if current.isKeyword("DESCRIBE") || current.isKeyword("DESC") {
            pos += 1
            if accept("HISTORY") {
                let name = try parseName()
                var limit: Expr?
                if accept("LIMIT") { limit = try parsePrimary() }
                stmt = .describeHistory(name, limit: limit)
            } else {
                _ = accept("TABLE")
                for k in ["EXTENDED", "FORMATTED", "DETAIL", "QUERY", "FUNCTION", "SCHEMA", "DATABASE", "CATALOG"]
                where current.isKeyword(k) {
                    throw error()
                }
                stmt = .describeTable(try parseName())
            }
        } else if accept("SHOW") {
            stmt = try parseShow()
        } else {
            throw error()
        }
        _ = acceptSymbol(";")
        guard current.kind == .end else { throw error() }
        return stmt
    }

    private mutating func parseShow() throws(SQLError) -> Statement {
        if accept("CATALOGS") {
            return .showCatalogs(like: try parseLike())
        }
        if accept("SCHEMAS") || accept("DATABASES") {
            var cat: NameRef?
            if accept("IN") || accept("FROM") { cat = try parseName() }
            return .showSchemas(catalog: cat, like: try parseLike())
        }
        if accept("TABLES") {
            var sch: NameRef?
            if accept("IN") || accept("FROM") { sch = try parseName() }
            return .showTables(schema: sch, like: try parseLike())
        }
        if accept("COLUMNS") {
            guard accept("IN") || accept("FROM") else { throw error() }
            var name = try parseName()
            if accept("IN") || accept("FROM") {
                let schema = try parseName()
                name = NameRef(parts: schema.parts + name.parts.suffix(1), offset: name.offset)
            }
            return .showColumns(name)
        }
        if accept("TBLPROPERTIES") {
            let name = try parseName()
            var key: String?
            if acceptSymbol("(") {
                key = try parsePropertyKey()
                try expectSymbol(")")
            }
            return .showTblProperties(name, key: key)
        }
        throw error()
    }

    private mutating func parsePropertyKey() throws(SQLError) -> String {
        if current.kind == .string { return advance().text }
        var parts: [String] = []
        repeat {
            guard current.kind == .identifier || current.kind == .quotedIdentifier else { throw error() }
            parts.append(advance().text)
        } while acceptSymbol(".")
        return parts.joined(separator: ".")
    }

    private mutating func parseLike() throws(SQLError) -> String? {
        guard accept("LIKE") else {
            if current.kind == .string { return advance().text }
            return nil
        }
        guard current.kind == .string else { throw error() }
        return advance().text
    }

    /// A dotted name of 1–3 parts, each bare or backtick-quoted.
    private mutating func parseName() throws(SQLError) -> NameRef {
        let start = current.offset
        var parts: [String] = []
        repeat {
            let t = current
            guard t.kind == .quotedIdentifier || (t.kind == .identifier && !isReserved(t)) else { throw error() }
            parts.append(advance().text)
        } while acceptSymbol(".")
        guard parts.count <= 3 else { throw error(at: tokens[pos - 1]) }
        return NameRef(parts: parts, offset: start)
    }

    /// `[WITH name AS (query), ...] SELECT ...`, at `SELECT` or `WITH`.
    private mutating func parseQuery() throws(SQLError) -> SelectStatement {
        try enter()
        defer { leave() }
        var ctes: [CommonTableExpression] = []
        if accept("WITH") {
            if current.isKeyword("RECURSIVE") { throw unsupported("recursive common table expressions") }
            repeat {
                let t = current
                guard t.kind == .quotedIdentifier || (t.kind == .identifier && !isReserved(t)) else { throw error() }
                pos += 1
                if current.isSymbol("(") { throw unsupported("column lists on a WITH name") }
                _ = accept("AS")
                try expectSymbol("(")
                guard current.isKeyword("SELECT") || current.isKeyword("WITH") else { throw error() }
                let q = try parseQuery()
                try expectSymbol(")")
                ctes.append(CommonTableExpression(name: t.text, query: q, offset: t.offset))
            } while acceptSymbol(",")
            var seen = Set<String>()
            for c in ctes where !seen.insert(c.name.lowercased()).inserted {
                throw SQLError(
                    "DUPLICATED_CTE_NAMES", "42602", "CTE definition can't have duplicate names: `\(c.name)`.")
            }
        }
        try expect("SELECT")
        var s = try parseSelectBody()
        s.ctes = ctes
        return s
    }

    private func unsupported(_ what: String) -> SQLError {
        SQLError("UNSUPPORTED_FEATURE.SIMULATOR", "0A000", "The warehouse simulator does not support \(what).")
    }

    private mutating func parseSelectBody() throws(SQLError) -> SelectStatement {
        // A hint (`/*+ BROADCAST(t) */`) changes how Spark runs the query, never its result: skip it.
        if acceptSymbol("/*+") {
            while !current.isSymbol("*/") {
                guard current.kind != .end else { throw error() }
                pos += 1
            }
            pos += 1
        }
        if current.isKeyword("DISTINCT") || current.isKeyword("ALL") { throw error() }
        var items: [SelectItem] = []
        repeat {
            if acceptSymbol("*") {
                items.append(.star)
                continue
            }
            // `a.*`, `c.s.t.*`: names separated by dots, then `.*`.
            var j = pos
            var qualifier: [String] = []
            while tokens[j].kind == .quotedIdentifier || (tokens[j].kind == .identifier && !isReserved(tokens[j])),
                tokens[j + 1].isSymbol(".")
            {
                qualifier.append(tokens[j].text)
                j += 2
            }
            if !qualifier.isEmpty && tokens[j].isSymbol("*") {
                items.append(.qualifiedStar(qualifier, offset: current.offset))
                pos = j + 1
                continue
            }
            let startTok = current
            let e = try parseExpr()
            // The item as written, from its first token to its last (not the comment or space after it).
            let text = String(decoding: bytes[startTok.offset..<tokens[pos - 1].end], as: UTF8.self)
            var alias: String?
            if accept("AS") {
                guard current.kind == .identifier || current.kind == .quotedIdentifier else { throw error() }
                alias = advance().text
            } else if current.kind == .quotedIdentifier || (current.kind == .identifier && !isReserved(current)) {
                alias = advance().text
            }
            items.append(.expr(e, alias: alias, text: text))
        } while acceptSymbol(",")
        if current.kind == .end || current.isSymbol(";") || current.isSymbol(")") {
            return SelectStatement(items: items, from: nil, whereClause: nil, orderBy: [], limit: nil, offset: nil)
        }
        try expect("FROM")
        let from = try parseRelation()
        var whereClause: Expr?
        if accept("WHERE") { whereClause = try parseExpr() }
        var order: [OrderItem] = []
        if accept("ORDER") {
            try expect("BY")
            repeat {
                let e = try parseExpr()
                var desc = false
                if accept("DESC") { desc = true } else { _ = accept("ASC") }
                var nullsFirst: Bool?
                if accept("NULLS") {
                    if accept("FIRST") {
                        nullsFirst = true
                    } else {
                        try expect("LAST")
                        nullsFirst = false
                    }
                }
                order.append(OrderItem(expr: e, descending: desc, nullsFirst: nullsFirst))
            } while acceptSymbol(",")
        }
        var limit: Expr?
        var offset: Expr?
        if accept("LIMIT") {
            if accept("ALL") { limit = nil } else { limit = try parsePrimary() }
        }
        if accept("OFFSET") { offset = try parsePrimary() }
        return SelectStatement(
            items: items, from: from, whereClause: whereClause, orderBy: order, limit: limit, offset: offset)
    }

    /// A FROM source with its joins: `primary { [INNER] JOIN primary ON expr | LEFT [OUTER] JOIN primary ON expr }`.
    private mutating func parseRelation() throws(SQLError) -> FromSource {
        var left = try parseRelationPrimary()
        while true {
            let joinTok = current
            let kind: JoinKind
            if accept("JOIN") {
                kind = .inner
            } else if current.isKeyword("INNER") && tokens[pos + 1].isKeyword("JOIN") {
                pos += 2
                kind = .inner
            } else if current.isKeyword("LEFT")
                && (tokens[pos + 1].isKeyword("JOIN") || (tokens[pos + 1].isKeyword("OUTER") && tokens[pos + 2].isKeyword("JOIN")))
            {
                pos += tokens[pos + 1].isKeyword("OUTER") ? 3 : 2
                kind = .left
            } else if ["RIGHT", "FULL", "CROSS", "NATURAL", "LEFT"].contains(where: { current.isKeyword($0) }) {
                throw unsupported("\(current.text.uppercased()) joins (only [INNER] JOIN and LEFT [OUTER] JOIN ... ON)")
            } else if current.isSymbol(",") {
                throw unsupported("comma-separated FROM lists (write [INNER] JOIN ... ON)")
            } else {
                break
            }
            let right = try parseRelationPrimary()
            if current.isKeyword("USING") { throw unsupported("JOIN ... USING (write JOIN ... ON)") }
            guard accept("ON") else {
                // Spark reads a JOIN without ON as a cross join when the relation ends there; anything else is a
                // syntax error at that token.
                let ends = ["WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "JOIN", "INNER", "LEFT", "RIGHT",
                            "FULL", "CROSS", "NATURAL", "UNION", "EXCEPT", "INTERSECT", "WINDOW", "QUALIFY"]
                guard current.kind == .end || current.isSymbol(")") || current.isSymbol(";") || current.isSymbol(",")
                    || ends.contains(where: { current.isKeyword($0) })
                else { throw error() }
                throw unsupported("a JOIN without ON")
            }
            let on = try parseExpr()
            left = .join(left, right, kind, on: on, offset: joinTok.offset)
        }
        return left
    }

    /// One FROM source: a name (with time travel), `table_changes(...)` or `(query)`, then an optional alias.
    private mutating func parseRelationPrimary() throws(SQLError) -> FromSource {
        if current.isKeyword("table_changes") && tokens[pos + 1].isSymbol("(") {
            let off = advance().offset
            pos += 1
            var args: [Expr] = []
            if !current.isSymbol(")") {
                repeat { args.append(try parseExpr()) } while acceptSymbol(",")
            }
            try expectSymbol(")")
            return .tableChanges(args: args, offset: off, alias: try parseAlias())
        }
        if current.isSymbol("(") {
            let off = current.offset
            guard tokens[pos + 1].isKeyword("SELECT") || tokens[pos + 1].isKeyword("WITH") else { throw error() }
            pos += 1
            let q = try parseQuery()
            try expectSymbol(")")
            return .derived(q, alias: try parseAlias(), offset: off)
        }
        let name = try parseName()
        if current.isSymbol("(") { throw error() }  // other table-valued functions
        var tt: TimeTravel?
        if current.isKeyword("VERSION") || current.isKeyword("TIMESTAMP") {
            let isVersion = advance().isKeyword("VERSION")
            try expect("AS")
            try expect("OF")
            let e = try parsePrimary()
            tt = isVersion ? .version(e) : .timestamp(e)
        }
        return .table(name, tt, alias: try parseAlias())
    }

    /// `[AS] alias`, or nil. Column lists (`AS t(a, b)`) are not supported.
    private mutating func parseAlias() throws(SQLError) -> String? {
        var alias: String?
        if accept("AS") {
            guard current.kind == .identifier || current.kind == .quotedIdentifier else { throw error() }
            alias = advance().text
        } else if current.kind == .quotedIdentifier || (current.kind == .identifier && !isReserved(current)) {
            alias = advance().text
        }
        if alias != nil && current.isSymbol("(") { throw unsupported("column lists on a table alias") }
        return alias
    }

    // MARK: expressions

    private mutating func parseExpr() throws(SQLError) -> Expr { try parseOr() }

    private mutating func parseOr() throws(SQLError) -> Expr {
        var l = try parseAnd()
        while accept("OR") { l = .binary("OR", l, try parseAnd()) }
        return l
    }

    private mutating func parseAnd() throws(SQLError) -> Expr {
        var l = try parseNot()
        while accept("AND") { l = .binary("AND", l, try parseNot()) }
        return l
    }

    private mutating func parseNot() throws(SQLError) -> Expr {
        if accept("NOT") {
            try enter()
            defer { leave() }
            return .not(try parseNot())
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws(SQLError) -> Expr {
        let l = try parseUnary()
        for op in ["=", "==", "<>", "!=", "<=", ">=", "<", ">"] where current.isSymbol(op) {
            pos += 1
            let r = try parseUnary()
            let norm = op == "==" ? "=" : (op == "!=" ? "<>" : op)
            return .binary(norm, l, r)
        }
        if accept("IS") {
            let neg = accept("NOT")
            try expect("NULL")
            return .isNull(l, negated: neg)
        }
        let save = pos
        let neg = accept("NOT")
        if accept("IN") {
            try expectSymbol("(")
            if current.isKeyword("SELECT") { throw error() }
            var list: [Expr] = []
            repeat { list.append(try parseUnary()) } while acceptSymbol(",")
            try expectSymbol(")")
            return .inList(l, list, negated: neg)
        }
        if accept("LIKE") {
            return .like(l, try parseUnary(), negated: neg)
        }
        if accept("BETWEEN") {
            let lo = try parseUnary()
            try expect("AND")
            let hi = try parseUnary()
            return .between(l, lo, hi, negated: neg)
        }
        if neg {
            pos = save
            throw error(at: tokens[pos])
        }
        return l
    }

    private mutating func parseUnary() throws(SQLError) -> Expr {
        if acceptSymbol("-") {
            let t = current
            if t.kind == .integer || t.kind == .decimal {
                pos += 1
                return .literal(t.kind == .integer ? .integer("-" + t.text) : .decimal("-" + t.text), offset: t.offset)
            }
            return .negate(try parsePrimary())
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(SQLError) -> Expr {
        let t = current
        switch t.kind {
        case .string:
            pos += 1
            return .literal(.string(t.text), offset: t.offset)
        case .integer:
            pos += 1
            return .literal(.integer(t.text), offset: t.offset)
        case .decimal:
            pos += 1
            return .literal(.decimal(t.text), offset: t.offset)
        case .parameter:
            pos += 1
            return .parameter(t.text, offset: t.offset)
        case .symbol where t.text == "(":
            pos += 1
            if current.isKeyword("SELECT") || current.isKeyword("WITH") { throw error() }
            try enter()
            defer { leave() }
            let e = try parseExpr()
            try expectSymbol(")")
            return e
        case .identifier where t.isKeyword("NULL"):
            pos += 1
            return .literal(.null, offset: t.offset)
        case .identifier where (t.isKeyword("TIMESTAMP") || t.isKeyword("DATE") || t.isKeyword("TIMESTAMP_NTZ"))
            && tokens[pos + 1].kind == .string:
            pos += 1
            let lit = advance()
            return .cast(.literal(.string(lit.text), offset: lit.offset), try! SQLType(parsing: t.text))
        case .identifier where t.isKeyword("CAST") && tokens[pos + 1].isSymbol("("):
            pos += 2
            let inner = try parseExpr()
            try expect("AS")
            // The type: tokens up to the matching ')'.
            var text = ""
            var depth = 0
            while !(current.isSymbol(")") && depth == 0) {
                let tok = advance()
                if tok.kind == .end { throw error(at: tok) }
                if tok.isSymbol("(") || tok.isSymbol("<") { depth += 1 }
                if tok.isSymbol(")") || tok.isSymbol(">") { depth -= 1 }
                text += (tok.kind == .identifier && !text.isEmpty && !text.hasSuffix("(") && !text.hasSuffix("<") && !text.hasSuffix(",") ? " " : "") + tok.text
            }
            try expectSymbol(")")
            guard let type = try? SQLType(parsing: text), type.name != "NULL" else {
                throw SQLError(
                    "UNSUPPORTED_DATATYPE", "0A000", "Unsupported data type \"\(text)\".")
            }
            return .cast(inner, type)
        case .identifier where t.isKeyword("TRUE") || t.isKeyword("FALSE"):
            pos += 1
            return .literal(.boolean(t.isKeyword("TRUE")), offset: t.offset)
        case .identifier, .quotedIdentifier:
            if t.kind == .identifier && isReserved(t) { throw error() }
            var parts: [String] = []
            repeat {
                let p = current
                guard p.kind == .quotedIdentifier || (p.kind == .identifier && !isReserved(p)) else { throw error() }
                parts.append(advance().text)
            } while acceptSymbol(".")
            if current.isSymbol("(") {
                // A function call: name(args) or count(*).
                guard parts.count == 1 else { throw error() }
                pos += 1
                if current.isKeyword("DISTINCT") { throw error() }
                if acceptSymbol("*") {
                    try expectSymbol(")")
                    return .function(parts[0].lowercased(), [], star: true, offset: t.offset)
                }
                var args: [Expr] = []
                try enter()
                defer { leave() }
                if !current.isSymbol(")") {
                    repeat { args.append(try parseExpr()) } while acceptSymbol(",")
                }
                try expectSymbol(")")
                if current.isKeyword("OVER") || current.isKeyword("FILTER") { throw error() }
                return .function(parts[0].lowercased(), args, star: false, offset: t.offset)
            }
            // `::` casts and arithmetic are not supported.
            if current.isSymbol("::") { throw error() }
            return .column(parts, offset: t.offset)
        default:
            throw error()
        }
    }
}
