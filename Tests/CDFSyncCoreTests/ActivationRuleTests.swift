import CDFSyncCore
import Foundation
import Testing

/// The activation block of a pipeline (docs/activation.md): how it reads, what it refuses, and who the compiled rule
/// finds eligible.
@Suite("Activation rule")
struct ActivationRuleTests {
    func pipeline(_ activation: Pipeline.Activation, mapping: [String: String]? = nil) -> Pipeline {
        Pipeline(
            name: "p", connection: .init(name: "c"), source: "main.s.t",
            mapping: mapping ?? ["external_id": "pid", "email": "mail", "country": "land", "company": "co"],
            attributes: [.init(column: "age", type: .integer), .init(column: "tier")],
            consent: .init(column: "consent", optedIn: ["yes"]), activation: activation)
    }

    func rule(_ conditions: [Pipeline.Activation.Condition]) throws -> ActivationRule {
        try #require(ActivationRule(Pipeline.Activation(inviteStudy: "S-1", eligibility: conditions)))
    }

    func record(_ json: String) -> [UInt8] { Array(json.utf8) }

    @Test func importIsTheDefaultAndHasNoRule() {
        #expect(ActivationRule(.importOnly) == nil)
        #expect(pipeline(.importOnly).staticProblems().isEmpty)
        #expect(Pipeline.Activation.importOnly.isImportOnly)
    }

    @Test func targetsHaveKeysAndSayWhetherTheyNeedConfirmation() throws {
        let study = try #require(Pipeline.Activation(inviteStudy: "S-42").target)
        #expect(study.key == "study:S-42" && study.requiresConfirmation)
        let task = try #require(Pipeline.Activation(inviteTask: "T 7").target)
        #expect(task.key == "task:T 7" && task.requiresConfirmation)
        let pool = try #require(Pipeline.Activation(pool: "early").target)
        #expect(pool.key == "pool:early" && !pool.requiresConfirmation)
        #expect(ActivationTarget(key: "study:a:b") == ActivationTarget(kind: .study, id: "a:b"))
        #expect(ActivationTarget(key: "nope:x") == nil)
    }

    @Test func problemsNameTheField() {
        let two = pipeline(.init(pool: "a", inviteStudy: "b")).staticProblems()
        #expect(two.contains { $0.hasPrefix("activation.invite_study: give one of pool, invite_study or invite_task") })
        #expect(pipeline(.init(inviteStudy: " ")).staticProblems().contains { $0.hasPrefix("activation.invite_study: the id must not be empty") })
        #expect(pipeline(.init(inviteTask: String(repeating: "x", count: 129))).staticProblems()
            .contains { $0.hasPrefix("activation.invite_task: the id is 129 bytes") })
        #expect(pipeline(.init(inviteStudy: "a\u{7}")).staticProblems().contains { $0.contains("control character") })
        let unknownField = pipeline(.init(inviteStudy: "S", eligibility: [.init(field: "shoe", op: .eq, value: .scalar("1"))]))
        #expect(unknownField.staticProblems().contains { $0.hasPrefix("activation.eligibility[0].field: 'shoe' is not a panel field") })
        let unmapped = pipeline(.init(inviteStudy: "S", eligibility: [.init(field: "city", op: .isNotNull)]))
        #expect(unmapped.staticProblems().contains { $0.hasPrefix("activation.eligibility[0].field: 'city' is not mapped") })
        let attribute = pipeline(.init(inviteStudy: "S", eligibility: [.init(field: "attributes.size", op: .isNull)]))
        #expect(attribute.staticProblems().contains { $0.contains("'attributes.size' is not an attribute of this pipeline (attributes: age, tier)") })
        let noValue = pipeline(.init(inviteStudy: "S", eligibility: [.init(field: "country", op: .in)]))
        #expect(noValue.staticProblems().contains { $0 == "activation.eligibility[0].value: in needs a non-empty list" })
        let badCountry = pipeline(.init(inviteStudy: "S", eligibility: [.init(field: "country", op: .eq, value: .scalar("Atlantis"))]))
        #expect(badCountry.staticProblems().contains { $0.hasPrefix("activation.eligibility[0].value:") })
        let noContact = pipeline(.init(inviteStudy: "S"), mapping: ["external_id": "pid"]).staticProblems()
        #expect(noContact.contains { $0.hasPrefix("activation: map email or phone") })
        let conditionsOnImport = pipeline(.init(eligibility: [.init(field: "country", op: .isNull)])).staticProblems()
        #expect(conditionsOnImport.contains { $0.hasPrefix("activation.eligibility: applies to a pool or an invitation") })
        var events = pipeline(.init(inviteStudy: "S"), mapping: ["event_id": "e"])
        events.kind = .events
        #expect(events.staticProblems().contains { $0 == "activation: applies to a participants pipeline; events are not invited" })
        let good = pipeline(.init(inviteStudy: "S", eligibility: [
            .init(field: "country", op: .in, value: .list(["gb", "Ireland"])), .init(field: "attributes.age", op: .ge, value: .scalar("18")),
        ]))
        #expect(good.staticProblems().isEmpty)
    }

    @Test func eligibleMeansOptedInReachableAndMeetingEveryCondition() throws {
        let r = try rule([.init(field: "country", op: .in, value: .list(["gb", "Ireland"])),
                          .init(field: "attributes.age", op: .ge, value: .scalar("18"))])
        #expect(r.ineligibility(of: record(#"{"email":"a@x.io","country":"GB","contactable":true,"attributes":{"age":30}}"#)) == nil)
        #expect(r.ineligibility(of: record(#"{"email":"a@x.io","country":"IE","contactable":true,"attributes":{"age":18}}"#)) == nil)
        #expect(r.ineligibility(of: record(#"{"email":"a@x.io","country":"GB","contactable":false,"attributes":{"age":30}}"#)) == .notOptedIn)
        #expect(r.ineligibility(of: record(#"{"email":null,"phone":null,"country":"GB","contactable":true}"#)) == .noContact)
        #expect(r.ineligibility(of: record(#"{"phone":"+4420","country":"FR","contactable":true,"attributes":{"age":30}}"#)) == .condition(0))
        #expect(r.ineligibility(of: record(#"{"phone":"+4420","country":"GB","contactable":true,"attributes":{"age":9}}"#)) == .condition(1))
        // A missing value meets no comparison (SQL's NULL).
        #expect(r.ineligibility(of: record(#"{"phone":"+4420","country":"GB","contactable":true}"#)) == .condition(1))
        #expect(r.describe(.condition(0)) == "eligibility: country in [gb, Ireland]")
        #expect(r.describe(.notOptedIn) == "not opted in")
        #expect(r.describe(.noContact) == "no email or phone")
    }

    @Test func operatorsFollowTheFiltersAndNull() throws {
        func meets(_ op: Pipeline.Filter.Operator, _ value: String?, _ operands: [String]) -> Bool {
            let json = value.map { #"{"email":"a@x.io","contactable":true,"company":\#($0)}"# }
                ?? #"{"email":"a@x.io","contactable":true,"company":null}"#
            let v: Pipeline.FilterValue? = operands.isEmpty ? nil : (op == .in || op == .notIn ? .list(operands) : .scalar(operands[0]))
            return (try? rule([.init(field: "company", op: op, value: v)]))?.ineligibility(of: record(json)) == nil
        }
        #expect(meets(.eq, #""Acme""#, ["Acme"]) && !meets(.eq, #""acme""#, ["Acme"]))
        #expect(meets(.ne, #""Beta""#, ["Acme"]) && !meets(.ne, nil, ["Acme"]))
        #expect(meets(.lt, "9", ["10"]) && meets(.lt, #""9""#, ["10"]))  // numbers compare as numbers, even as text
        #expect(meets(.lt, #""b""#, ["c"]) && !meets(.lt, #""b""#, ["a"]))  // other text as text
        #expect(meets(.gt, #""2026-03-02""#, ["2026-03-01"]) && !meets(.gt, #""2026-02-28""#, ["2026-03-01"]))
        #expect(meets(.le, "10", ["10"]) && meets(.ge, "10.5", ["10"]))
        #expect(meets(.in, #""b""#, ["a", "b"]) && !meets(.in, nil, ["a"]))
        #expect(meets(.notIn, #""c""#, ["a", "b"]) && !meets(.notIn, nil, ["a"]))
        #expect(meets(.isNull, nil, []) && !meets(.isNull, #""x""#, []))
        #expect(meets(.isNotNull, #""x""#, []) && !meets(.isNotNull, nil, []))
        #expect(meets(.like, #""Acme Ltd""#, ["Acme%"]) && meets(.like, #""Acme""#, ["A_m%"]))
        #expect(!meets(.like, #""The Acme""#, ["Acme%"]) && meets(.like, #""50%""#, ["50\\%"]) && !meets(.like, #""500""#, ["50\\%"]))
        #expect(meets(.like, #""aXbXc""#, ["%b%c"]) && !meets(.like, #""abd""#, ["%b%c"]))
        #expect(meets(.eq, "true", ["true"]))
    }

    @Test func conditionValuesAreNormalisedLikeTheStoredValues() throws {
        let r = try rule([.init(field: "email", op: .eq, value: .scalar(" Ana@Example.com ")),
                          .init(field: "country", op: .eq, value: .scalar("united kingdom"))])
        #expect(r.ineligibility(of: record(#"{"email":"ana@example.com","country":"GB","contactable":true}"#)) == nil)
    }

    @Test func damagedRecordsAreNeverEligible() throws {
        let r = try rule([])
        for text in ["", "{", "[]", #"{"contactable":tru"#, #"{"email":"a@x.io","contactable":"true"}"#,
                     #"{"email":"a@x.io" "contactable":true}"#, "\u{0}"] {
            #expect(r.ineligibility(of: record(text)) != nil, "\(text)")
        }
        // Escapes and nesting before the fields are read through.
        let tricky = #"{"note":"a \"quoted\" }{ \\","nested":{"contactable":false,"x":[1,{"y":"}"}]},"email":"b@x.io","contactable":true}"#
        #expect(r.ineligibility(of: record(tricky)) == nil)
        #expect(r.ineligibility(of: record(#"{"email":"\u00e9@x.io","contactable":true}"#)) == nil)
        // Numbers and literals before the fields are stepped over; one that is not a value stops the reading.
        #expect(r.ineligibility(of: record(#"{"n":-1.5e3,"t":true,"f":false,"z":null,"email":"b@x.io","contactable":true}"#)) == nil)
        for broken in [#"{"n":x,"email":"b@x.io","contactable":true}"#, #"{"t":tru,"email":"b@x.io","contactable":true}"#] {
            #expect(r.ineligibility(of: record(broken)) != nil, "\(broken)")
        }
    }

    @Test func flatJSONReadsEveryMemberOrNothing() throws {
        let text = #"{"a":"x\"y\u00e9","n":-12.5e3,"t":true,"f":false,"z":null,"o":{"k":[1,"}"]},"e":""}"#
        let members = try #require(Array(text.utf8).withUnsafeBytes { FlatJSON.members($0) })
        #expect(members.map(\.key) == ["a", "n", "t", "f", "z", "o", "e"])
        #expect(members.map(\.value) == [.string("x\"yé"), .number("-12.5e3"), .bool(true), .bool(false), .null,
                                          .composite, .string("")])
        #expect(Array("{}".utf8).withUnsafeBytes { FlatJSON.members($0) }?.isEmpty == true)
        for bad in ["", "{", #"{"a":1"#, #"{"a" 1}"#, #"{"a":1,}"#, #"{"a":1 "b":2}"#, #"["a"]"#, #"{"a":tru}"#] {
            #expect(Array(bad.utf8).withUnsafeBytes { FlatJSON.members($0) } == nil, "\(bad)")
        }
    }

    @Test func readsFromYAMLShapes() throws {
        let decoder = JSONDecoder()
        let word = try decoder.decode(Pipeline.Activation.self, from: Data(#""import""#.utf8))
        #expect(word == .importOnly)
        #expect(throws: DecodingError.self) { try decoder.decode(Pipeline.Activation.self, from: Data(#""invite""#.utf8)) }
        let full = try decoder.decode(Pipeline.Activation.self, from: Data(
            #"{"invite_study": 42, "eligibility": [{"field": "country", "op": "in", "value": ["GB"]}], "webhook": {"url": "https://h/x", "token_env": "T"}}"#.utf8))
        #expect(full.inviteStudy == "42" && full.eligibility.count == 1 && full.webhook?.tokenEnv == "T")
        let encoded = try JSONEncoder().encode(Pipeline.Activation.importOnly)
        #expect(String(decoding: encoded, as: UTF8.self) == #""import""#)
    }
}
