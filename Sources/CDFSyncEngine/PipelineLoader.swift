import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation
import Yams

/// Reads pipeline YAML files strictly and explains what is wrong with them, field by field, with the line and
/// column of each problem.
///
/// A pipeline file decides who is imported and who may be contacted, so nothing in it is ignored: a key that is
/// not a field (`filter:` for `filters:`, `consnet:` for `consent:`) is an error naming the nearest field, at every
/// level, instead of a filter or a consent rule silently left out. The file is composed into a node tree
/// (`Yams.compose`, which keeps each node's line and column), checked against ``Pipeline/shape`` — the keys come
/// from the Codable types' coding keys, so there is no second list to drift — with `${VAR}` expanded
/// (``EnvironmentExpansion``), then decoded, then checked as a whole (``Pipeline/staticProblems(maxNameBytes:)``,
/// webhook URLs as libcurl parses them). Every problem found is reported, not only the first.
public enum PipelineLoader {
    /// The longest pipeline name (UTF-8 bytes) the state store can key by: every key built from it fits LMDB's key
    /// limit (511 bytes) — the longest is a webhook cursor's checkpoint, `checkpoint/webhook/<name>/<16 hex
    /// digits>` — and its identity keys (`<name>`, NUL, external id) leave at least as much room for an external
    /// id as the name takes (255 bytes of 511).
    public static let maxNameBytes: Int = {
        let limit = LMDBEnvironment.defaultMaxKeySize
        let webhookCursor = PanelStore.checkpointKeyLength(WebhookSink.cursorKey(pipeline: "", urlHash: .max))
        return min(limit - webhookCursor, (limit - 1) / 2)
    }()

    /// Why `path` could not be read, in words: missing (with the pipeline files next to where it was looked for),
    /// a directory, or not readable.
    static func unreadable(_ path: String) -> SyncError {
        let shown = FilePaths.shown(path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            let url = URL(fileURLWithPath: path)
            let dir = url.deletingLastPathComponent().path
            let near = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            let there = near.isEmpty ? "" : " (pipeline files there: \(near.prefix(10).joined(separator: ", "))"
                + (near.count > 10 ? ", …" : "") + ")"
            return SyncError("pipeline file \(shown) does not exist\(there)",
                remedy: "Check the path; `cdfsync pipeline init` writes a new pipeline file.")
        }
        if isDirectory.boolValue {
            return SyncError("pipeline file \(shown) is a directory", remedy: "Give the path of a pipeline's YAML file.")
        }
        return SyncError("pipeline file \(shown) cannot be read", remedy: "Check its permissions.")
    }

    /// Loads and checks a pipeline file.
    /// - Throws: `SyncError` whose message lists every problem with its line, column and field path.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> Pipeline
    {
        guard let data = FileManager.default.contents(atPath: path) else { throw unreadable(path) }
        return try load(yaml: String(decoding: data, as: UTF8.self), origin: FilePaths.shown(path),
            environment: environment)
    }

    /// Loads and checks a pipeline given as YAML text; `origin` names it in messages.
    public static func load(yaml: String, origin: String = "pipeline",
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Pipeline
    {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw SyncError("\(origin) is empty",
                    remedy: "Write the pipeline's fields; docs/pipelines.md lists them.")
            }
            root = node
        } catch let e as YamlError {
            throw SyncError("\(origin): not valid YAML: \(describe(e))",
                remedy: "Check the indentation and quoting at that place.")
        }
        var checker = Checker(environment: environment)
        let expanded = checker.walk(root, shape: Pipeline.shape, path: "")
        var problems = checker.problems
        do {
            // Decoded also when the walk found problems (the decoder skips unknown keys), to report the rest too.
            let pipeline = try YAMLDecoder().decode(Pipeline.self, from: expanded)
            let seen = Set(problems.map(\.path))
            for text in Self.problems(of: pipeline) where !seen.contains(fieldPath(of: text)) {
                let path = fieldPath(of: text)
                problems.append(Problem(path: path, mark: mark(of: path, in: expanded), text: text))
            }
            if problems.isEmpty { return pipeline }
        } catch let e as DecodingError {
            // A value of the wrong kind the walk already named makes the decoder fail too: say it once.
            if problems.isEmpty {
                let (path, message) = describe(e)
                problems.append(Problem(path: path, mark: mark(of: path, in: expanded), text: message))
            }
        }
        throw report(problems, origin: origin)
    }

    /// Every problem of a decoded pipeline visible without the warehouse: ``Pipeline/staticProblems(maxNameBytes:)``
    /// with the state store's name limit, and the workspace host and webhook URLs as libcurl parses them (https,
    /// or http to loopback only; no user info).
    public static func problems(of pipeline: Pipeline) -> [String] {
        var p = pipeline.staticProblems(maxNameBytes: maxNameBytes)
        if let host = pipeline.connection.host {
            do {
                _ = try ConnectionSettings.normalizeHost(host)
            } catch let e as DatabricksError {
                p.append("connection.host: \(e.message)")
            } catch {
                p.append("connection.host: \(error)")
            }
        }
        if let url = pipeline.activation.webhook?.url, !url.isEmpty {
            do {
                try ParsedURL(url).requireSecure()
            } catch {
                p.append("activation.webhook.url: \(error.message)")
            }
        }
        for (i, sink) in pipeline.sinks.enumerated() where sink.type == .webhook {
            guard let url = sink.url else { continue }
            do {
                try ParsedURL(url).requireSecure()
            } catch {
                p.append("sinks[\(i)].url: \(error.message)")
            }
        }
        return p
    }

    // MARK: - Problems and their places

    struct Problem {
        /// The field path it names (`sinks[0].url`).
        var path: String
        var mark: Mark?
        var text: String
    }

    static func report(_ problems: [Problem], origin: String) -> SyncError {
        let sorted = problems.enumerated().sorted { a, b in
            let (x, y) = (a.element.mark, b.element.mark)
            return (x?.line ?? .max, x?.column ?? .max, a.offset) < (y?.line ?? .max, y?.column ?? .max, b.offset)
        }.map { p in (p.element.mark.map { "line \($0.line), column \($0.column): " } ?? "") + p.element.text }
        let message = sorted.count == 1
            ? "\(origin): \(sorted[0])"
            : "\(origin) has \(sorted.count) problems:\n  - " + sorted.joined(separator: "\n  - ")
        return SyncError(message, remedy: "Fix the fields named above; docs/pipelines.md lists every field.")
    }

    /// The field path a problem's text starts with (`sinks[0].url: …` → `sinks[0].url`).
    static func fieldPath(of text: String) -> String {
        String(text.prefix { $0 != ":" && $0 != " " })
    }

    /// The node at `path` (`filters[0].value`), or the deepest one on the way there; its line and column.
    static func mark(of path: String, in root: Node) -> Mark? {
        var node = root
        for step in steps(path) {
            switch step {
            case .key(let k):
                guard let next = node.mapping?[k] else { return node.mark }
                node = next
            case .index(let i):
                guard let seq = node.sequence, seq.indices.contains(i) else { return node.mark }
                node = seq[i]
            }
        }
        // A mapping's mark is where its first key starts; for a key that names it, the key's own line reads better.
        return node.mark
    }

    enum Step { case key(String), index(Int) }

    /// `filters[0].value` → key filters, index 0, key value.
    static func steps(_ path: String) -> [Step] {
        var out: [Step] = []
        for part in path.split(separator: ".") {
            let pieces = part.split(separator: "[", omittingEmptySubsequences: false)
            if let key = pieces.first, !key.isEmpty { out.append(.key(String(key))) }
            for piece in pieces.dropFirst() {
                if let i = Int(piece.prefix { $0 != "]" }) { out.append(.index(i)) }
            }
        }
        return out
    }

    // MARK: - The node walk

    /// Walks the node tree against the pipeline's shape: collects a problem for every key that is not a field and
    /// every node of the wrong kind, and returns the tree with `${VAR}` expanded in values.
    struct Checker {
        var environment: [String: String]
        var problems: [Problem] = []

        mutating func walk(_ node: Node, shape: PipelineShape, path: String) -> Node {
            switch (shape, node) {
            case (.either(let a, let b), _):
                return walk(node, shape: Self.matches(a, node) ? a : b, path: path)
            case (.scalar, .scalar(let scalar)):
                // Fields that end in _env name a variable; they hold no value to expand.
                guard !path.hasSuffix("_env") else { return node }
                do {
                    let text = try EnvironmentExpansion.expand(scalar.string, environment: environment)
                    guard text != scalar.string else { return node }
                    return .scalar(Node.Scalar(text, scalar.tag, scalar.style, scalar.mark))
                } catch {
                    problems.append(Problem(path: path, mark: scalar.mark, text: "\(name(path)): \(error.message)"))
                    return node
                }
            case (.list(let item), .sequence(let seq)):
                var items: [Node] = []
                for (i, n) in seq.enumerated() { items.append(walk(n, shape: item, path: "\(path)[\(i)]")) }
                return .sequence(Node.Sequence(items, seq.tag, seq.style, seq.mark))
            case (.dictionary(let value), .mapping(let map)):
                var pairs: [(Node, Node)] = []
                for (k, v) in map {
                    guard let key = k.scalar?.string else {
                        problems.append(Problem(path: path, mark: k.mark, text: "\(name(path)): a key must be a name"))
                        continue
                    }
                    pairs.append((k, walk(v, shape: value, path: join(path, key))))
                }
                return .mapping(Node.Mapping(pairs, map.tag, map.style, map.mark))
            case (.object(let fields), .mapping(let map)):
                var pairs: [(Node, Node)] = []
                for (k, v) in map {
                    guard let key = k.scalar?.string else {
                        problems.append(
                            Problem(path: path, mark: k.mark, text: "\(name(path)): a key must be a field name"))
                        continue
                    }
                    guard let field = fields.first(where: { $0.key == key }) else {
                        let allowed = fields.map(\.key)
                        let hint = Self.nearest(key, in: allowed).map { "did you mean \($0)?" }
                            ?? "allowed: \(allowed.joined(separator: ", "))"
                        problems.append(Problem(path: join(path, key), mark: k.mark,
                            text: "\(join(path, key)): unknown field (\(hint))"))
                        continue
                    }
                    pairs.append((k, walk(v, shape: field.shape, path: join(path, key))))
                }
                return .mapping(Node.Mapping(pairs, map.tag, map.style, map.mark))
            case (_, .scalar) where node.null != nil:
                // `field:` or `field: ~` — absent; the decoder says whether the field is required.
                return node
            default:
                problems.append(Problem(path: path, mark: node.mark,
                    text: "\(name(path)): expected \(Self.expected(shape)), found \(Self.found(node))"))
                return node
            }
        }

        func name(_ path: String) -> String { path.isEmpty ? "the file" : path }
        func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        static func matches(_ shape: PipelineShape, _ node: Node) -> Bool {
            switch (shape, node) {
            case (.scalar, .scalar), (.list, .sequence), (.dictionary, .mapping), (.object, .mapping): true
            case (.either(let a, let b), _): matches(a, node) || matches(b, node)
            default: false
            }
        }

        static func expected(_ shape: PipelineShape) -> String {
            switch shape {
            case .scalar: "a single value"
            case .list: "a list"
            case .dictionary: "a mapping"
            case .object(let fields): "a mapping of \(fields.map(\.key).joined(separator: ", "))"
            case .either(let a, let b): "\(expected(a)) or \(expected(b))"
            }
        }

        static func found(_ node: Node) -> String {
            switch node {
            case .scalar: "a single value"
            case .sequence: "a list"
            case .mapping: "a mapping"
            case .alias: "an alias"
            }
        }

        /// The allowed key closest to `key` by edit distance (a transposition counts once), if it is close enough
        /// to be a typo: at most 2 edits, and fewer than half the key's length.
        static func nearest(_ key: String, in allowed: [String]) -> String? {
            let scored = allowed.map { ($0, editDistance(Array(key.utf8), Array($0.utf8))) }
            guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 * 2 < max(key.utf8.count, 2)
            else { return nil }
            return best.0
        }

        /// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
        static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
            if a.isEmpty { return b.count }
            if b.isEmpty { return a.count }
            var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
            for i in 0...a.count { d[i][0] = i }
            for j in 0...b.count { d[0][j] = j }
            for i in 1...a.count {
                for j in 1...b.count {
                    let cost = a[i - 1] == b[j - 1] ? 0 : 1
                    d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                    if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                        d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                    }
                }
            }
            return d[a.count][b.count]
        }
    }

    // MARK: - Messages

    /// A YAML syntax error as one line: where, and what libyaml says.
    static func describe(_ e: YamlError) -> String {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let ctx = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return "line \(mark.line), column \(mark.column): \(problem)\(ctx)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "line \(context.mark.line), column \(context.mark.column): "
                + "\(duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")) given twice in one mapping"
        case .reader(let problem, let offset, _, _):
            return "\(problem)\(offset.map { " at byte \($0)" } ?? "")"
        default:
            return "\(e)".split(separator: "\n").first.map(String.init) ?? "\(e)"
        }
    }

    /// The values each of the pipeline's enums allows, by type name (as the decoder names it).
    static let allowedValues: [String: [String]] = [
        "Kind": Pipeline.Kind.allCases.map(\.rawValue),
        "Mode": Pipeline.Mode.allCases.map(\.rawValue),
        "Schedule": Pipeline.Schedule.allCases.map(\.rawValue),
        "ValueType": Pipeline.Attribute.ValueType.allCases.map(\.rawValue),
        "Operator": Pipeline.Filter.Operator.allCases.map(\.rawValue),
        "SinkType": Pipeline.Sink.SinkType.allCases.map(\.rawValue),
    ]

    /// `Cannot initialize T from invalid String value v` (Foundation's message for a bad raw value) → (T, v).
    static func invalidEnumValue(_ description: String) -> (type: String, value: String)? {
        let prefix = "Cannot initialize "
        guard description.hasPrefix(prefix), let from = description.range(of: " from invalid String value ") else { return nil }
        let type = String(description[..<from.lowerBound].dropFirst(prefix.count))
        return (type, String(description[from.upperBound...]))
    }

    /// A decoding error as (field path, message naming the field).
    static func describe(_ e: DecodingError) -> (path: String, message: String) {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { k in k.intValue.map { "[\($0)]" } ?? ".\(k.stringValue)" }.joined()
                .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch e {
        case .keyNotFound(let key, let ctx):
            return (path(ctx.codingPath), "\(path(ctx.codingPath + [key])): required field is missing")
        case .typeMismatch(let type, let ctx):
            return (path(ctx.codingPath), "\(path(ctx.codingPath)): expected \(type)")
        case .valueNotFound(let type, let ctx):
            return (path(ctx.codingPath), "\(path(ctx.codingPath)): expected \(type), found nothing")
        case .dataCorrupted(let ctx):
            let p = path(ctx.codingPath)
            // A value outside one of the pipeline's enums: say what the field allows, not how Swift decodes.
            if let (type, value) = invalidEnumValue(ctx.debugDescription), let allowed = allowedValues[type] {
                return (p, "\(p): '\(value)' is not allowed (use one of: \(allowed.joined(separator: ", ")))")
            }
            return (p, "\(p.isEmpty ? "the file" : p): \(ctx.debugDescription)")
        @unknown default:
            return ("", "\(e)")
        }
    }
}
