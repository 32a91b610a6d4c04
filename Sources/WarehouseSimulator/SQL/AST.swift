import Foundation

/// A possibly partial table name as written: 1–3 parts.
struct NameRef: Sendable, Equatable {
    var parts: [String]
    var offset: Int
}

/// A literal value; `nil` text is NULL.
enum Literal: Sendable, Equatable {
    case null
    case string(String)
    case integer(String)
    case decimal(String)
    case boolean(Bool)
}

indirect enum Expr: Sendable, Equatable {
    case literal(Literal, offset: Int)
    case parameter(String, offset: Int)
    case column([String], offset: Int)
    case binary(String, Expr, Expr)  // = <> < <= > >= AND OR
    case not(Expr)
    case isNull(Expr, negated: Bool)
    case inList(Expr, [Expr], negated: Bool)
    case like(Expr, Expr, negated: Bool)
    case between(Expr, Expr, Expr, negated: Bool)
    case negate(Expr)
    /// A function call; `name` lower-cased, `star` for `count(*)`.
    case function(String, [Expr], star: Bool, offset: Int)
    /// `CAST(x AS type)`, or a typed literal such as `TIMESTAMP '2026-01-01'`.
    case cast(Expr, SQLType)

    var offset: Int {
        switch self {
        case .literal(_, let o), .parameter(_, let o), .column(_, let o), .function(_, _, _, let o): return o
        case .binary(_, let l, _): return l.offset
        case .not(let e), .isNull(let e, _), .inList(let e, _, _), .like(let e, _, _), .between(let e, _, _, _),
            .negate(let e), .cast(let e, _):
            return e.offset
        }
    }
}

enum SelectItem: Sendable, Equatable {
    case star
    /// `a.*`, `main.crm.customers.*`: every column of the sources the qualifier names.
    case qualifiedStar([String], offset: Int)
    case expr(Expr, alias: String?, text: String)
}

enum TimeTravel: Sendable, Equatable {
    case version(Expr)
    case timestamp(Expr)
}

/// A FROM source: a table, view or common table expression by name, `table_changes(...)`, a derived table, or a join
/// of two of them.
indirect enum FromSource: Sendable, Equatable {
    case table(NameRef, TimeTravel?, alias: String?)
    case tableChanges(args: [Expr], offset: Int, alias: String?)
    /// `(SELECT ...) [AS] alias`; Spark allows the alias to be left out.
    case derived(SelectStatement, alias: String?, offset: Int)
    case join(FromSource, FromSource, JoinKind, on: Expr, offset: Int)
}

enum JoinKind: Sendable, Equatable {
    case inner
    case left
}

/// `name AS (SELECT ...)` of a `WITH` clause.
struct CommonTableExpression: Sendable, Equatable {
    var name: String
    var query: SelectStatement
    var offset: Int
}

struct OrderItem: Sendable, Equatable {
    var expr: Expr
    var descending: Bool
    var nullsFirst: Bool?
}

struct SelectStatement: Sendable, Equatable {
    /// The statement's `WITH` clause (non-recursive), visible to its FROM sources and their subqueries.
    var ctes: [CommonTableExpression] = []
    var items: [SelectItem]
    /// nil for `SELECT <constants>` without FROM (one row).
    var from: FromSource?
    var whereClause: Expr?
    var orderBy: [OrderItem]
    var limit: Expr?
    var offset: Expr?
}

enum Statement: Sendable, Equatable {
    case select(SelectStatement)
    case describeHistory(NameRef, limit: Expr?)
    case describeTable(NameRef)
    case showColumns(NameRef)
    case showCatalogs(like: String?)
    case showSchemas(catalog: NameRef?, like: String?)
    case showTables(schema: NameRef?, like: String?)
    case showTblProperties(NameRef, key: String?)
}
