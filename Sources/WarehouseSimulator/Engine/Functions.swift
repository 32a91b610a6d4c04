import Foundation

/// The few built-in functions the simulator knows: aggregates `count`, `min`, `max` (no GROUP BY) and
/// scalars `unix_micros`, `unix_millis`, `unix_seconds`, `current_timestamp`/`now`, `lower`, `upper`,
/// `trim`, `length`, `coalesce`. Anything else is `UNRESOLVED_ROUTINE`, as in Databricks.
extension Executor {
    static let aggregateFunctions: Set<String> = ["count", "min", "max"]
    /// Name → allowed argument counts.
    static let scalarFunctions: [String: ClosedRange<Int>] = [
        "unix_micros": 1...1, "unix_millis": 1...1, "unix_seconds": 1...1, "current_timestamp": 0...0, "now": 0...0,
        "lower": 1...1, "upper": 1...1, "trim": 1...1, "length": 1...1, "coalesce": 1...64,
    ]

    func checkFunction(_ name: String, _ args: [Expr], star: Bool) throws(SQLError) {
        if Self.aggregateFunctions.contains(name) {
            guard (star && name == "count") || (!star && args.count == 1) else {
                throw wrongArgs(name, args.count, name == "count" ? "1" : "1")
            }
            for a in args where containsAggregate(a) {
                throw SQLError(
                    "NESTED_AGGREGATE_FUNCTION", "42607",
                    "It is not allowed to use an aggregate function in the argument of another aggregate function. Please use the inner aggregate function in a sub-query.")
            }
            return
        }
        guard let arity = Self.scalarFunctions[name] else {
            throw SQLError(
                "UNRESOLVED_ROUTINE", "42883",
                "Cannot resolve routine `\(name)` on search path [`system`.`builtin`, `system`.`session`, `\(defaultCatalog)`.`\(defaultSchema)`].")
        }
        guard !star, arity.contains(args.count) else {
            throw wrongArgs(name, args.count, arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "[\(arity.lowerBound), \(arity.upperBound)]")
        }
    }

    func wrongArgs(_ name: String, _ n: Int, _ expected: String) -> SQLError {
        SQLError(
            "WRONG_NUM_ARGS.WITHOUT_SUGGESTION", "42605",
            "The `\(name)` requires \(expected) parameters but the actual number is \(n). Please, refer to 'https://docs.databricks.com/sql/language-manual/sql-ref-functions.html' for a fix.")
    }

    func containsAggregate(_ e: Expr) -> Bool {
        switch e {
        case .function(let n, let args, _, _): return Self.aggregateFunctions.contains(n) || args.contains(where: containsAggregate)
        case .binary(_, let l, let r): return containsAggregate(l) || containsAggregate(r)
        case .not(let x), .isNull(let x, _), .negate(let x): return containsAggregate(x)
        case .inList(let x, let l, _): return containsAggregate(x) || l.contains(where: containsAggregate)
        case .like(let x, let p, _): return containsAggregate(x) || containsAggregate(p)
        case .between(let x, let a, let b, _): return containsAggregate(x) || containsAggregate(a) || containsAggregate(b)
        case .cast(let x, _): return containsAggregate(x)
        case .literal, .parameter, .column: return false
        }
    }

    /// The column name Spark gives an expression: `count(1)`, `max(last_updated_at)`.
    func display(_ e: Expr) -> String {
        switch e {
        case .column(let parts, _): return parts.last!
        case .literal(let l, _):
            switch l {
            case .null: return "NULL"
            case .string(let s): return s
            case .integer(let s), .decimal(let s): return s
            case .boolean(let b): return b ? "true" : "false"
            }
        case .parameter(let n, _): return ":" + n
        case .function(let n, let args, let star, _):
            return n + "(" + (star ? "1" : args.map(display).joined(separator: ", ")) + ")"
        case .binary(let op, let l, let r): return "(\(display(l)) \(op) \(display(r)))"
        case .not(let x): return "(NOT \(display(x)))"
        case .negate(let x): return "(- \(display(x)))"
        case .isNull(let x, let neg): return "(\(display(x)) IS \(neg ? "NOT " : "")NULL)"
        case .inList(let x, let l, let neg): return "(\(display(x)) \(neg ? "NOT " : "")IN (\(l.map(display).joined(separator: ", "))))"
        case .like(let x, let p, let neg): return "\(display(x)) \(neg ? "NOT " : "")LIKE \(display(p))"
        case .between(let x, let a, let b, let neg): return "(\(display(x)) \(neg ? "NOT " : "")BETWEEN \(display(a)) AND \(display(b)))"
        case .cast(let x, let t): return "CAST(\(display(x)) AS \(t.text))"
        }
    }

    func typeOf(_ e: Expr, _ rel: Relation) throws(SQLError) -> SQLType {
        switch e {
        case .column(let parts, let off): return rel.columns[try columnIndex(parts, in: rel, offset: off)].type
        case .literal(let l, _):
            switch l {
            case .null: return try! SQLType(parsing: "VOID")
            case .string: return .string
            case .integer(let x): return Int32(x) != nil ? .int : .bigint
            case .decimal: return try! SQLType(parsing: "DOUBLE")
            case .boolean: return .boolean
            }
        case .parameter(let n, _): return (try? SQLType(parsing: try parameter(n).type)) ?? .string
        case .function(let n, let args, _, _):
            switch n {
            case "count", "unix_micros", "unix_millis", "unix_seconds": return .bigint
            case "length": return .int
            case "current_timestamp", "now": return .timestamp
            case "lower", "upper", "trim": return .string
            default: return args.isEmpty ? .string : try typeOf(args[0], rel)  // min, max, coalesce
            }
        case .negate(let x): return try typeOf(x, rel)
        case .cast(_, let t): return t
        default: return .boolean
        }
    }

    func scalarFunction(_ name: String, _ args: [Value], offset: Int) throws(SQLError) -> Value {
        func ts(_ v: Value) throws(SQLError) -> Int64? {
            switch v {
            case .null: return nil
            case .timestamp(let ms): return ms
            case .string(let s):
                guard let ms = try? Timestamp.parseMillis(s) else { throw Value.castError(s, "TIMESTAMP") }
                return ms
            default: throw typeMismatch(name)
            }
        }
        func str(_ v: Value) -> String? {
            switch v {
            case .null: return nil
            case .string(let s): return s
            case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
            case .bool(let b): return b ? "true" : "false"
            case .timestamp(let ms): return Timestamp.format(millis: ms)
            }
        }
        switch name {
        case "unix_micros": return try ts(args[0]).map { .number(Double($0) * 1000) } ?? .null
        case "unix_millis": return try ts(args[0]).map { .number(Double($0)) } ?? .null
        case "unix_seconds": return try ts(args[0]).map { .number(Double($0 / 1000)) } ?? .null
        case "current_timestamp", "now": return .timestamp(nowMillis)
        case "lower": return str(args[0]).map { .string($0.lowercased()) } ?? .null
        case "upper": return str(args[0]).map { .string($0.uppercased()) } ?? .null
        case "trim": return str(args[0]).map { .string($0.trimmingCharacters(in: .init(charactersIn: " "))) } ?? .null
        case "length": return str(args[0]).map { .number(Double($0.count)) } ?? .null
        case "coalesce": return args.first { !$0.isNull } ?? .null
        default:
            throw SQLError("UNSUPPORTED_FEATURE.SIMULATOR", "0A000", "The warehouse simulator cannot use `\(name)` here.")
        }
    }

    /// JSON_ARRAY text of a computed value of `type`.
    func text(_ v: Value, _ type: SQLType) -> String? {
        switch v {
        case .null: return nil
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .timestamp(let ms): return Timestamp.format(millis: ms)
        case .number(let d):
            if type.isIntegral { return String(Int64(d)) }
            if type.name == "DECIMAL", let scale = type.scale { return String(format: "%.\(scale)f", d) }
            return String(d)
        }
    }

    /// SELECT with aggregates and no GROUP BY: one row.
    func aggregate(_ s: SelectStatement, _ rel: Relation, _ outputs: [OutputColumn]) throws(SQLError) -> ResultSet {
        for o in outputs {
            if o.index != nil {
                throw SQLError(
                    "MISSING_GROUP_BY", "42803",
                    "The query does not include a GROUP BY clause. Add GROUP BY or turn it into the window functions using OVER clauses.")
            }
            if let e = o.expr, containsAggregate(e) {
                guard case .function(let n, _, _, _) = e, Self.aggregateFunctions.contains(n) else {
                    throw unsupported("expressions around aggregate functions", at: e.offset)
                }
            }
        }
        let onlyCountStar = outputs.allSatisfy { o in
            guard let e = o.expr else { return true }
            if case .function("count", _, true, _) = e { return true }
            return !containsAggregate(e)
        }
        var indices: [Int] = []
        var total = rel.count
        if s.whereClause != nil || !onlyCountStar {
            if rel.isLazy && rel.count > materializeLimit {
                throw unsupported("aggregates over more than \(materializeLimit) generated rows (other than count(*))", at: 0)
            }
            for r in 0..<rel.count {
                if let w = s.whereClause { guard try eval(w, rel, row: r) == .bool(true) else { continue } }
                indices.append(r)
            }
            total = indices.count
        }
        var row: Row = []
        for o in outputs {
            guard let e = o.expr else {
                row.append(o.constant)
                continue
            }
            guard case .function(let n, let args, let star, _) = e else {
                row.append(text(try eval(e, rel, row: 0), o.column.type))
                continue
            }
            if n == "count" && star {
                row.append(String(total))
                continue
            }
            var count = 0
            var best: (Value, String?)?
            for r in indices {
                let v: Value
                var t: String?
                if case .column(let parts, let off) = args[0] {
                    let i = try columnIndex(parts, in: rel, offset: off)
                    t = rel.value(r, i)
                    v = Value(text: t, type: rel.columns[i].type)
                } else {
                    v = try eval(args[0], rel, row: r)
                    t = text(v, o.column.type)
                }
                if v.isNull { continue }
                count += 1
                if n == "count" { continue }
                if let b = best {
                    let c = try Value.compare(v, b.0) ?? 0
                    if (n == "min" && c < 0) || (n == "max" && c > 0) { best = (v, t) }
                } else {
                    best = (v, t)
                }
            }
            row.append(n == "count" ? String(count) : best?.1)
        }
        let offset = try s.offset.map { e throws(SQLError) in try intArgument(e, what: "offset") } ?? 0
        let limit = try s.limit.map { e throws(SQLError) in try intArgument(e, what: "limit") }
        let keep = offset == 0 && (limit ?? 1) > 0
        return ResultSet(columns: outputs.map(\.column), materialized: keep ? [row] : [])
    }

    /// `CAST(v AS type)` with Spark's ANSI rules for the simple types.
    func castValue(_ v: Value, to type: SQLType) throws(SQLError) -> Value {
        if v.isNull { return .null }
        let source: String = {
            switch v {
            case .string(let s): return s
            case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
            case .bool(let b): return b ? "true" : "false"
            case .timestamp(let ms): return Timestamp.format(millis: ms)
            case .null: return ""
            }
        }()
        if type.isNumeric {
            switch v {
            case .number(let d): return .number(type.isIntegral ? d.rounded(.towardZero) : d)
            case .bool(let b): return .number(b ? 1 : 0)
            case .timestamp(let ms) where type.isIntegral: return .number(Double(ms / 1000))
            default:
                guard let d = Double(source.trimmingCharacters(in: .whitespaces)) else { throw Value.castError(source, type.text) }
                return .number(type.isIntegral ? d.rounded(.towardZero) : d)
            }
        }
        switch type.name {
        case "TIMESTAMP", "TIMESTAMP_NTZ":
            if case .timestamp = v { return v }
            guard let ms = try? Timestamp.parseMillis(source) else { throw Value.castError(source, type.text) }
            return .timestamp(ms)
        case "DATE":
            guard let ms = try? Timestamp.parseMillis(source) else { throw Value.castError(source, "DATE") }
            return .string(String(Timestamp.format(millis: ms).prefix(10)))
        case "BOOLEAN":
            if case .bool = v { return v }
            switch source.lowercased() {
            case "true", "t", "yes", "y", "1": return .bool(true)
            case "false", "f", "no", "n", "0": return .bool(false)
            default: throw Value.castError(source, "BOOLEAN")
            }
        case "STRING": return .string(source)
        default: throw unsupported("CAST to \(type.text)", at: 0)
        }
    }
}
