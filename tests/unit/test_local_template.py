"""The local stack reads template.yaml as a deployment would: each function's environment is
Globals plus its own variables with every intrinsic resolved to the local resources, its role
is its own policies plus what SAM adds, and parameters are checked like CloudFormation checks
them. No moto, no processes: the template parts are pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from motionrelay_local.faults import Faults, FaultSpecError
from motionrelay_local.iam import Policy, Request
from motionrelay_local.template import (
    Resolver,
    SamTemplate,
    TemplateError,
    function_environment,
    function_statements,
    schedule_seconds,
)

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Routing: {Type: String, Default: kie, AllowedPattern: "^(kie|novita)(,(kie|novita))*$"}
  LogLevel: {Type: String, Default: INFO, AllowedValues: [INFO, DEBUG]}
Conditions:
  Debug: !Equals [!Ref LogLevel, DEBUG]
Globals:
  Function:
    Tracing: Active
    Environment:
      Variables:
        MOTIONRELAY_TABLE: !Ref JobsTable
        MOTIONRELAY_ROUTING: !Ref Routing
        SHARED: globals
Resources:
  JobsTable: {Type: AWS::DynamoDB::Table}
  Queue: {Type: AWS::SQS::Queue}
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/api/
      Handler: api_handler.lambda_handler
      Environment:
        Variables:
          SHARED: own
          QUEUE_URL: !Ref Queue
          INDEX_ARN: !Sub "${JobsTable.Arn}/index/due"
          VERBOSE: !If [Debug, "yes", !Ref AWS::NoValue]
      Policies:
        - Statement:
            - Sid: Jobs
              Effect: Allow
              Action: [dynamodb:GetItem]
              Resource: !GetAtt JobsTable.Arn
  TransferFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/transfer/
      Handler: transfer_handler.lambda_handler
      Events:
        Q: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}
"""
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/local-jobs"
QUEUE_URL = "http://127.0.0.1:1/123456789012/local-queue"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:q"
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "local",
          "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def template(text: str = TEMPLATE) -> SamTemplate:
    decoded, matches = decode_str(text)
    assert not matches, matches
    return SamTemplate(decoded, ROOT)


def resolver(t: SamTemplate, **overrides: str) -> Resolver:
    return Resolver(t, refs={"JobsTable": "local-jobs", "Queue": QUEUE_URL},
                    attributes={"JobsTable.Arn": TABLE_ARN, "Queue.Arn": QUEUE_ARN},
                    parameters=t.parameter_values(overrides), pseudo=PSEUDO)


def test_each_function_gets_globals_and_its_own_variables_resolved_and_nothing_else():
    t = template()
    r = resolver(t)
    api = function_environment(t, t.functions["ApiFunction"], r)
    transfer = function_environment(t, t.functions["TransferFunction"], r)
    assert api == {"MOTIONRELAY_TABLE": "local-jobs", "MOTIONRELAY_ROUTING": "kie", "SHARED": "own",
                   "QUEUE_URL": QUEUE_URL, "INDEX_ARN": f"{TABLE_ARN}/index/due"}
    # No variable of another function leaks in: the transfer function has only the Globals.
    assert transfer == {"MOTIONRELAY_TABLE": "local-jobs", "MOTIONRELAY_ROUTING": "kie", "SHARED": "globals"}


def test_a_condition_and_a_parameter_override_decide_a_variable():
    t = template()
    env = function_environment(t, t.functions["ApiFunction"], resolver(t, LogLevel="DEBUG", Routing="novita"))
    assert env["VERBOSE"] == "yes" and env["MOTIONRELAY_ROUTING"] == "novita"


def test_a_reference_to_nothing_the_stack_created_is_an_error_not_a_silent_default():
    t = template(TEMPLATE.replace("QUEUE_URL: !Ref Queue", "QUEUE_URL: !Ref NoSuchQueue"))
    with pytest.raises(TemplateError, match="NoSuchQueue"):
        function_environment(t, t.functions["ApiFunction"], resolver(t))


def test_parameters_are_checked_like_cloudformation_checks_them():
    t = template()
    t.check_parameter({"Routing": "kie,novita"})
    with pytest.raises(TemplateError, match="Routing"):
        t.check_parameter({"Routing": "kie,nobody"})
    with pytest.raises(TemplateError, match="LogLevel"):
        t.check_parameter({"LogLevel": "LOUD"})
    t.check_parameter({"Routing": "anything"}, skip=("Routing",))


def test_the_role_is_the_inline_policy_plus_what_sam_adds():
    t = template()
    r = resolver(t)
    api = Policy(function_statements(t, t.functions["ApiFunction"], r))
    assert api.decide(Request("dynamodb:GetItem", TABLE_ARN)).allowed
    assert not api.decide(Request("dynamodb:GetItem", f"{TABLE_ARN}/index/due")).allowed
    assert not api.decide(Request("dynamodb:UpdateItem", TABLE_ARN)).allowed
    assert api.decide(Request("logs:PutLogEvents", "arn:aws:logs:us-east-1:1:log-group:x")).allowed
    assert api.decide(Request("xray:PutTraceSegments", "*")).allowed  # Tracing: Active
    assert not api.decide(Request("sqs:ReceiveMessage", QUEUE_ARN)).allowed
    transfer = Policy(function_statements(t, t.functions["TransferFunction"], r))
    # The SQS event source's managed policy.
    assert transfer.decide(Request("sqs:DeleteMessage", QUEUE_ARN)).allowed
    assert not transfer.decide(Request("dynamodb:GetItem", TABLE_ARN)).allowed


def test_the_repositorys_template_resolves_for_every_function():
    t = SamTemplate.from_file(ROOT / "template.yaml", ROOT)
    refs = {lid: f"local-{lid}" for lid in t.template["Resources"]}
    attributes = {f"{lid}.{attr}": f"arn:local:{lid}" for lid in t.template["Resources"]
                  for attr in ("Arn", "QueueName", "StreamArn")}
    r = Resolver(t, refs=refs, attributes=attributes, parameters=t.parameter_values({}), pseudo=PSEUDO)
    for spec in t.functions.values():
        env = function_environment(t, spec, r)
        assert env["MOTIONRELAY_TABLE"] == "local-JobsTable"
        assert "MOTIONRELAY_LOCAL" not in env
        assert function_statements(t, spec, r)


def test_schedule_rates():
    assert schedule_seconds("rate(1 minute)") == 60
    assert schedule_seconds("rate(5 minutes)") == 300
    assert schedule_seconds("rate(2 hours)") == 7200
    with pytest.raises(TemplateError):
        schedule_seconds("cron(0 * * * ? *)")


def test_fault_specs_parse_and_refuse_nonsense():
    faults = Faults.parse("crash=0.2, redeliver=0.3,overlap=2,seed=7")
    assert (faults.crash, faults.redeliver, faults.overlap, faults.seed) == (0.2, 0.3, 2, 7)
    assert faults.describe() == "crash=0.2,redeliver=0.3,overlap=2,seed=7"
    assert not Faults.parse("").active and Faults.parse("").describe() == "none"
    for bad in ("crash=2", "crash=x", "overlap=-1", "explode=1", "crash"):
        with pytest.raises(FaultSpecError):
            Faults.parse(bad)


def test_faults_with_a_seed_repeat_their_choices():
    def choices() -> list:
        faults = Faults.parse("crash=0.5,redeliver=0.5,seed=42")
        return [(faults.crash_point("Fn", 6), faults.redelivery_delay(2.0)) for _ in range(50)]

    first = choices()
    assert first == choices()
    crashes = [c for c, _ in first if c is not None]
    assert 10 < len(crashes) < 40 and all(1 <= c <= 7 for c in crashes)
