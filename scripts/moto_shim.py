"""Start moto's server with the few calls Terraform makes that moto 5.2 lacks.

scripts/infra-check.sh applies the whole stack to moto. The AWS provider makes three
kinds of calls moto answers with "not implemented" (HTTP 500):

* cognito-idp DeleteResourceServer (destroying aws_cognito_resource_server);
* application-autoscaling TagResource / UntagResource / ListTagsForResource (every
  aws_appautoscaling_target, since the provider's default tags make it tagged).

And two answers moto gets wrong, each of which would make the second plan show a
change that is not one:

* ECS CreateService/UpdateService drop healthCheckGracePeriodSeconds,
  enableECSManagedTags and availabilityZoneRebalancing; DescribeServices never
  returns them;
* EC2 DescribeSecurityGroupRules loses the description of a rule that references
  another security group or a prefix list (it only reads descriptions of CIDR rules).

This module adds or fixes those actions on moto's own classes, in memory only, and
then runs moto's normal server entry point with the given arguments. The behaviour
mirrors AWS's; nothing is accepted that AWS would reject.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

from moto.applicationautoscaling import responses as aas_responses
from moto.cognitoidp import responses as cognito_responses
from moto.cognitoidp.exceptions import ResourceNotFoundError
from moto.core.responses import EmptyResult
from moto.ec2.models import security_groups as ec2_security_groups
from moto.ecs import responses as ecs_responses
from moto.server import main

################################################################################
# cognito-idp DeleteResourceServer
################################################################################


def _delete_resource_server(self: Any) -> EmptyResult:
    user_pool_id = self._get_param("UserPoolId")
    identifier = self._get_param("Identifier")
    pool = self.backend.describe_user_pool(user_pool_id)
    if identifier not in pool.resource_servers:
        raise ResourceNotFoundError(f"Resource server {identifier} does not exist.")
    del pool.resource_servers[identifier]
    return EmptyResult()


cognito_responses.CognitoIdpResponse.delete_resource_server = _delete_resource_server

################################################################################
# application-autoscaling tags (kept per account/region/ARN, like AWS)
################################################################################

_TAGS: dict[tuple[str, str, str], dict[str, str]] = defaultdict(dict)


def _key(self: Any, arn: str) -> tuple[str, str, str]:
    return (self.current_account, self.region, arn)


_register = aas_responses.ApplicationAutoScalingResponse.register_scalable_target


def _register_scalable_target(self: Any) -> str:
    body = _register(self)
    tags = self._get_param("Tags") or {}
    if tags:
        _TAGS[_key(self, json.loads(body)["ScalableTargetARN"])].update(tags)
    return body


def _tag_resource(self: Any) -> str:
    _TAGS[_key(self, self._get_param("ResourceARN"))].update(self._get_param("Tags") or {})
    return "{}"


def _untag_resource(self: Any) -> str:
    tags = _TAGS[_key(self, self._get_param("ResourceARN"))]
    for name in self._get_param("TagKeys") or []:
        tags.pop(name, None)
    return "{}"


def _list_tags_for_resource(self: Any) -> str:
    return json.dumps({"Tags": dict(_TAGS.get(_key(self, self._get_param("ResourceARN")), {}))})


_cls = aas_responses.ApplicationAutoScalingResponse
_cls.register_scalable_target = _register_scalable_target
_cls.tag_resource = _tag_resource
_cls.untag_resource = _untag_resource
_cls.list_tags_for_resource = _list_tags_for_resource

################################################################################
# ECS service fields moto drops (stored under their wire names, which moto's
# serializer picks up as they are)
################################################################################

_ECS_SERVICE_FIELDS = {
    "healthCheckGracePeriodSeconds": 0,
    "enableECSManagedTags": False,
    # AWS's default for services created through the API by this provider version.
    "availabilityZoneRebalancing": "DISABLED",
}


def _keep_service_fields(original: Any, creating: bool) -> Any:
    def action(self: Any) -> Any:
        result = original(self)
        service = result.result["service"]
        for field, default in _ECS_SERVICE_FIELDS.items():
            value = self._get_param(field)
            if value is not None:
                setattr(service, field, value)
            elif creating:
                setattr(service, field, default)
        return result

    return action


_ecs = ecs_responses.EC2ContainerServiceResponse
_ecs.create_service = _keep_service_fields(_ecs.create_service, creating=True)
_ecs.update_service = _keep_service_fields(_ecs.update_service, creating=False)

################################################################################
# EC2 security group rules that reference a group or a prefix list keep their
# description
################################################################################

_rule = ec2_security_groups.SecurityGroupRule
_rule_init = _rule.__init__


def _init_rule(self: Any, *args: Any, **kwargs: Any) -> None:
    # (ec2_backend, ip_protocol, group_id, from_port, to_port, ip_range, source_group,
    # prefix_list_id): moto keeps only the prefix list's id, not its description.
    prefix_list = kwargs.get("prefix_list_id", args[7] if len(args) > 7 else None)
    _rule_init(self, *args, **kwargs)
    self.prefix_list_description = (prefix_list or {}).get("Description")


def _rule_description(self: Any) -> str | None:
    return (
        self.ip_range.get("Description")
        or self.source_group.get("Description")
        or self.prefix_list_description
    )


def _referenced_group_info(self: Any) -> dict[str, str] | None:
    if not self.source_group:
        return None
    return {k: v for k, v in self.source_group.items() if k in ("GroupId", "UserId", "VpcId")}


_rule.__init__ = _init_rule
_rule.description = property(_rule_description)
_rule.referenced_group_info = property(_referenced_group_info)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
