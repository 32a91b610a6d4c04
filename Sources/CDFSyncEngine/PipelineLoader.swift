import CDFSyncCore
import Foundation
import Yams

/// Reads pipeline YAML files and explains what is wrong with them, field by field.
public enum PipelineLoader {
    /// Loads and checks a pipeline file.
    /// - Throws: `SyncError` whose message lists every problem with its field path.
    public static func load(path: String) throws -> Pipeline {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SyncError("pipeline file \(path) cannot be read", remedy: "Check the path and its permissions.")
        }
        return try load(yaml: String(decoding: data, as: UTF8.self), origin: path)
    }

    public static func load(yaml: String, origin: String = "pipeline") throws -> Pipeline {
        let pipeline: Pipeline
        do {
            pipeline = try YAMLDecoder().decode(Pipeline.self, from: yaml)
        } catch let e as DecodingError {
            throw SyncError("\(origin): \(describe(e))", remedy: "Fix that field; docs/pipelines.md lists every field.")
        } catch {
            throw SyncError("\(origin): not valid YAML (\(error))", remedy: "Check indentation and quoting.")
        }
        let problems = pipeline.staticProblems()
        guard problems.isEmpty else {
            throw SyncError("\(origin) has \(problems.count) problem(s):\n  - " + problems.joined(separator: "\n  - "),
                remedy: "Fix the fields named above; docs/pipelines.md lists every field.")
        }
        return pipeline
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
        let type = String(description[description.index(description.startIndex, offsetBy: prefix.count)..<from.lowerBound])
        return (type, String(description[from.upperBound...]))
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { k in k.intValue.map { "[\($0)]" } ?? ".\(k.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch e {
        case .keyNotFound(let key, let ctx):
            let p = path(ctx.codingPath + [key])
            return "\(p): required field is missing"
        case .typeMismatch(let type, let ctx):
            return "\(path(ctx.codingPath)): expected \(type)"
        case .valueNotFound(let type, let ctx):
            return "\(path(ctx.codingPath)): expected \(type), found nothing"
        case .dataCorrupted(let ctx):
            let p = path(ctx.codingPath)
            // A value outside one of the pipeline's enums: say what the field allows, not how Swift decodes.
            if let (type, value) = invalidEnumValue(ctx.debugDescription), let allowed = allowedValues[type] {
                return "\(p): '\(value)' is not allowed (use one of: \(allowed.joined(separator: ", ")))"
            }
            return "\(p.isEmpty ? "document" : p): \(ctx.debugDescription)"
        @unknown default:
            return "\(e)"
        }
    }
}
