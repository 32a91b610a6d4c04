import Foundation

/// A catalog-qualified table name, `catalog.schema.table`.
///
/// Parsing accepts plain parts and backtick-quoted parts (with ``` `` ``` for a literal backtick). Rendering
/// always quotes every part, so no name can break out of its identifier (design §2.3).
public struct QualifiedName: Sendable, Hashable, CustomStringConvertible {
    public var catalog: String
    public var schema: String
    public var table: String

    public init(catalog: String, schema: String, table: String) {
        self.catalog = catalog
        self.schema = schema
        self.table = table
    }

    /// Parses `catalog.schema.table`.
    /// - Throws: `SQLBuildError` naming the text when it is not three non-empty parts.
    public init(parsing text: String) throws(SQLBuildError) {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var chars = Array(text.trimmingWhitespace())[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "`" {
                    if chars.first == "`" {
                        chars.removeFirst()
                        current.append("`")
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(c)
                }
            } else if c == "`" {
                guard current.isEmpty else { throw SQLBuildError("table name '\(text)' has a backtick inside a name part") }
                quoted = true
                wasQuoted = true
            } else if c == "." {
                parts.append(current)
                current = ""
                wasQuoted = false
            } else {
                guard !wasQuoted else { throw SQLBuildError("table name '\(text)' has text after a closing backtick") }
                current.append(c)
            }
        }
        guard !quoted else { throw SQLBuildError("table name '\(text)' has an unclosed backtick") }
        parts.append(current)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else {
            throw SQLBuildError("table name '\(text)' must have three parts: catalog.schema.table")
        }
        catalog = parts[0]
        schema = parts[1]
        table = parts[2]
    }

    /// `` `catalog`.`schema`.`table` ``
    public var quoted: String {
        "\(SQL.quoteIdentifier(catalog)).\(SQL.quoteIdentifier(schema)).\(SQL.quoteIdentifier(table))"
    }

    /// The plain dotted form, for messages and state keys.
    public var description: String { "\(catalog).\(schema).\(table)" }
}

/// How a statement reads a column that a table version knew differently: the table's columns were renamed, added
/// or dropped since (Delta column mapping), and a `table_changes` range is read in the schema of its end version.
public enum ColumnRead: Sendable, Hashable {
    /// Under its own name.
    case same
    /// Under the name it had then.
    case renamed(String)
    /// Not there yet: read as NULL.
    case absent
}

/// An error building SQL from names and values.
public struct SQLBuildError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Helpers for generating SQL text. Identifiers are always backtick-quoted; values never appear in SQL text
/// except integers the engine produced itself (versions), everything else is a bound parameter.
public enum SQL {
    /// Quotes an identifier with backticks, doubling any backtick inside.
    public static func quoteIdentifier(_ name: String) -> String {
        "`" + name.replacingOccurrences(of: "`", with: "``") + "`"
    }

    /// A SQL string literal with `'` doubled and `\` escaped (Databricks SQL treats backslash as an escape
    /// in string literals).
    public static func stringLiteral(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// `DESCRIBE HISTORY <table> LIMIT 1`: the latest version is the first row's `version`.
    public static func latestVersion(of table: QualifiedName) -> String {
        "DESCRIBE HISTORY \(table.quoted) LIMIT 1"
    }

    /// `SELECT <cols>, _change_type, _commit_version, _commit_timestamp FROM table_changes('<t>', s, e)`.
    ///
    /// The table argument is a string literal holding the backtick-quoted name; the versions are integers.
    ///
    /// `reading` says how a column is read at `endVersion` when that differs from its name now: under the name it had
    /// then (`` `old` AS `new` ``), or as NULL when it did not exist yet.
    public static func tableChanges(
        of table: QualifiedName, columns: [String]?, startVersion: Int64, endVersion: Int64, conditions: [String] = [],
        reading: [String: ColumnRead] = [:]
    ) -> String {
        let cols = columns.map {
            $0.map { selectItem($0, reading[$0] ?? .same) }.joined(separator: ", ")
                + ", `_change_type`, `_commit_version`, `_commit_timestamp`"
        } ?? "*"
        return "SELECT \(cols) FROM table_changes(\(stringLiteral(table.quoted)), \(startVersion), \(endVersion))"
            + whereClause(conditions) + " ORDER BY `_commit_version`"
    }

    /// One select-list item: `` `c` ``, `` `old` AS `c` `` or `` NULL AS `c` ``.
    static func selectItem(_ column: String, _ read: ColumnRead) -> String {
        switch read {
        case .same: return quoteIdentifier(column)
        case .renamed(let old): return "\(quoteIdentifier(old)) AS \(quoteIdentifier(column))"
        case .absent: return "NULL AS \(quoteIdentifier(column))"
        }
    }

    /// `SELECT <cols> FROM <table> VERSION AS OF v`.
    public static func snapshot(of table: QualifiedName, columns: [String]?, version: Int64?, conditions: [String] = [])
        -> String
    {
        let cols = columns.map { $0.map(quoteIdentifier).joined(separator: ", ") } ?? "*"
        let asOf = version.map { " VERSION AS OF \($0)" } ?? ""
        return "SELECT \(cols) FROM \(table.quoted)\(asOf)" + whereClause(conditions)
    }
}

extension String {
    /// Without leading and trailing whitespace (`Character.isWhitespace`), as the record mapper trims values.
    public func trimmingWhitespace() -> Substring {
        // An ASCII string trims by bytes: there every whitespace byte is a character of its own (only CR LF
        // combine, and both are whitespace). The Unicode property lookup per character was 6 % of a pipeline
        // sync's CPU in perf.
        if let trimmed = utf8.withContiguousStorageIfAvailable({ u -> Substring? in
            var start = 0
            var end = u.count
            for b in u where b >= 0x80 { return nil }
            while start < end, Self.isASCIIWhitespace(u[start]) { start += 1 }
            while end > start, Self.isASCIIWhitespace(u[end - 1]) { end -= 1 }
            return self[utf8.index(startIndex, offsetBy: start)..<utf8.index(startIndex, offsetBy: end)]
        }), let trimmed {
            return trimmed
        }
        var s = self[...]
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }

    /// Tab, line feed, vertical tab, form feed, carriage return, space: the ASCII characters with `isWhitespace`.
    @inline(__always)
    static func isASCIIWhitespace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
}

/// A bound parameter produced by the SQL builder: `:name` in the text, its value and type.
public struct BoundParameter: Sendable, Equatable {
    public var name: String
    public var value: String?
    public var type: String?
    public init(name: String, value: String?, type: String? = nil) {
        self.name = name
        self.value = value
        self.type = type
    }
}

extension SQL {
    /// `cond AND cond ...` for structured filters: quoted identifiers, values only as parameters `:f<i>`.
    ///
    /// `reading` as for `tableChanges`: a filter tests the column under the name it has in the version read, or NULL.
    public static func filterConditions(_ filters: [Pipeline.Filter], reading: [String: ColumnRead] = [:])
        -> (sql: [String], parameters: [BoundParameter])
    {
        var conds: [String] = []
        var params: [BoundParameter] = []
        for (i, f) in filters.enumerated() {
            let col: String
            switch reading[f.column] ?? .same {
            case .same: col = quoteIdentifier(f.column)
            case .renamed(let old): col = quoteIdentifier(old)
            case .absent: col = "NULL"
            }
            func scalar() -> String {
                let name = "f\(i)"
                if case .scalar(let v)? = f.value { params.append(BoundParameter(name: name, value: v)) } else {
                    params.append(BoundParameter(name: name, value: nil))
                }
                return ":\(name)"
            }
            func list() -> String {
                guard case .list(let vs)? = f.value else { return "(NULL)" }
                return "(" + vs.enumerated().map { j, v in
                    params.append(BoundParameter(name: "f\(i)_\(j)", value: v))
                    return ":f\(i)_\(j)"
                }.joined(separator: ", ") + ")"
            }
            switch f.op {
            case .eq: conds.append("\(col) = \(scalar())")
            case .ne: conds.append("\(col) <> \(scalar())")
            case .lt: conds.append("\(col) < \(scalar())")
            case .le: conds.append("\(col) <= \(scalar())")
            case .gt: conds.append("\(col) > \(scalar())")
            case .ge: conds.append("\(col) >= \(scalar())")
            case .like: conds.append("\(col) LIKE \(scalar())")
            case .in: conds.append("\(col) IN \(list())")
            case .notIn: conds.append("\(col) NOT IN \(list())")
            case .isNull: conds.append("\(col) IS NULL")
            case .isNotNull: conds.append("\(col) IS NOT NULL")
            }
        }
        return (conds, params)
    }

    /// Appends ` WHERE a AND b` when there are conditions.
    public static func whereClause(_ conditions: [String]) -> String {
        conditions.isEmpty ? "" : " WHERE " + conditions.map { "(\($0))" }.joined(separator: " AND ")
    }
}
