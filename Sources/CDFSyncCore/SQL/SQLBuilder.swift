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
        "`" + name.replacingAll("`", with: "``") + "`"
    }

    /// A SQL string literal with `'` doubled and `\` escaped (Databricks SQL treats backslash as an escape
    /// in string literals).
    public static func stringLiteral(_ text: String) -> String {
        "'" + text.replacingAll("\\", with: "\\\\").replacingAll("'", with: "\\'") + "'"
    }

    /// `DESCRIBE HISTORY <table> LIMIT 1`: the latest version is the first row's `version`.
    public static func latestVersion(of table: QualifiedName) -> String {
        "DESCRIBE HISTORY \(table.quoted) LIMIT 1"
    }

    /// `SELECT <cols>, _change_type, _commit_version, _commit_timestamp FROM table_changes('<t>', s, e)`.
    ///
    /// The table argument is a string literal holding the backtick-quoted name; the versions are integers.
    public static func tableChanges(
        of table: QualifiedName, columns: [String]?, startVersion: Int64, endVersion: Int64
    ) -> String {
        let cols = columns.map { $0.map(quoteIdentifier).joined(separator: ", ") + ", `_change_type`, `_commit_version`, `_commit_timestamp`" } ?? "*"
        return "SELECT \(cols) FROM table_changes(\(stringLiteral(table.quoted)), \(startVersion), \(endVersion)) ORDER BY `_commit_version`"
    }

    /// `SELECT <cols> FROM <table> VERSION AS OF v`.
    public static func snapshot(of table: QualifiedName, columns: [String]?, version: Int64?) -> String {
        let cols = columns.map { $0.map(quoteIdentifier).joined(separator: ", ") } ?? "*"
        let asOf = version.map { " VERSION AS OF \($0)" } ?? ""
        return "SELECT \(cols) FROM \(table.quoted)\(asOf)"
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard contains(target) else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }

    func trimmingWhitespace() -> Substring {
        var s = self[...]
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        guard !target.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}
