namespace Trellis.Security.Policies;

/// <summary>
/// The actions AWS IoT defines (its control plane, the data plane and the jobs data plane, as in
/// botocore's service models <c>iot</c>, <c>iot-data</c> and <c>iot-jobs-data</c>, plus the MQTT
/// actions <c>Connect</c>, <c>Publish</c>, <c>Subscribe</c>, <c>Receive</c>, <c>RetainPublish</c>
/// and <c>AssumeRoleWithCertificate</c>), without the <c>iot:</c> prefix. A policy that names an
/// <c>iot:</c> action outside this list (<c>iot:Conect</c>) is refused when it is written.
/// </summary>
public static class IotActionNames
{
    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "AcceptCertificateTransfer", "AddThingToBillingGroup", "AddThingToThingGroup", "AssociateSbomWithPackageVersion", "AssociateTargetsWithJob",
        "AssumeRoleWithCertificate", "AttachPolicy", "AttachPrincipalPolicy", "AttachSecurityProfile", "AttachThingPrincipal",
        "CancelAuditMitigationActionsTask", "CancelAuditTask", "CancelCertificateTransfer", "CancelDetectMitigationActionsTask", "CancelJob",
        "CancelJobExecution", "ClearDefaultAuthorizer", "ConfirmTopicRuleDestination", "Connect", "CreateAuditSuppression", "CreateAuthorizer",
        "CreateBillingGroup", "CreateCertificateFromCsr", "CreateCertificateProvider", "CreateCommand", "CreateCustomMetric", "CreateDimension",
        "CreateDomainConfiguration", "CreateDynamicThingGroup", "CreateFleetMetric", "CreateJob", "CreateJobTemplate", "CreateKeysAndCertificate",
        "CreateMitigationAction", "CreateOTAUpdate", "CreatePackage", "CreatePackageVersion", "CreatePolicy", "CreatePolicyVersion",
        "CreateProvisioningClaim", "CreateProvisioningTemplate", "CreateProvisioningTemplateVersion", "CreateRoleAlias", "CreateScheduledAudit",
        "CreateSecurityProfile", "CreateStream", "CreateThing", "CreateThingGroup", "CreateThingType", "CreateTopicRule",
        "CreateTopicRuleDestination", "DeleteAccountAuditConfiguration", "DeleteAuditSuppression", "DeleteAuthorizer", "DeleteBillingGroup",
        "DeleteCACertificate", "DeleteCertificate", "DeleteCertificateProvider", "DeleteCommand", "DeleteCommandExecution", "DeleteConnection",
        "DeleteCustomMetric", "DeleteDimension", "DeleteDomainConfiguration", "DeleteDynamicThingGroup", "DeleteFleetMetric", "DeleteJob",
        "DeleteJobExecution", "DeleteJobTemplate", "DeleteMitigationAction", "DeleteOTAUpdate", "DeletePackage", "DeletePackageVersion",
        "DeletePolicy", "DeletePolicyVersion", "DeleteProvisioningTemplate", "DeleteProvisioningTemplateVersion", "DeleteRegistrationCode",
        "DeleteRoleAlias", "DeleteScheduledAudit", "DeleteSecurityProfile", "DeleteStream", "DeleteThing", "DeleteThingGroup", "DeleteThingShadow",
        "DeleteThingType", "DeleteTopicRule", "DeleteTopicRuleDestination", "DeleteV2LoggingLevel", "DeprecateThingType",
        "DescribeAccountAuditConfiguration", "DescribeAuditFinding", "DescribeAuditMitigationActionsTask", "DescribeAuditSuppression",
        "DescribeAuditTask", "DescribeAuthorizer", "DescribeBillingGroup", "DescribeCACertificate", "DescribeCertificate",
        "DescribeCertificateProvider", "DescribeCustomMetric", "DescribeDefaultAuthorizer", "DescribeDetectMitigationActionsTask",
        "DescribeDimension", "DescribeDomainConfiguration", "DescribeEncryptionConfiguration", "DescribeEndpoint", "DescribeEventConfigurations",
        "DescribeFleetMetric", "DescribeIndex", "DescribeJob", "DescribeJobExecution", "DescribeJobTemplate", "DescribeManagedJobTemplate",
        "DescribeMitigationAction", "DescribeProvisioningTemplate", "DescribeProvisioningTemplateVersion", "DescribeRoleAlias",
        "DescribeScheduledAudit", "DescribeSecurityProfile", "DescribeStream", "DescribeThing", "DescribeThingGroup",
        "DescribeThingRegistrationTask", "DescribeThingType", "DetachPolicy", "DetachPrincipalPolicy", "DetachSecurityProfile",
        "DetachThingPrincipal", "DisableTopicRule", "DisassociateSbomFromPackageVersion", "EnableTopicRule", "GetBehaviorModelTrainingSummaries",
        "GetBucketsAggregation", "GetCardinality", "GetCommand", "GetCommandExecution", "GetEffectivePolicies", "GetIndexingConfiguration",
        "GetJobDocument", "GetLoggingOptions", "GetOTAUpdate", "GetPackage", "GetPackageConfiguration", "GetPackageVersion",
        "GetPendingJobExecutions", "GetPercentiles", "GetPolicy", "GetPolicyVersion", "GetRegistrationCode", "GetRetainedMessage", "GetStatistics",
        "GetThingConnectivityData", "GetThingShadow", "GetTopicRule", "GetTopicRuleDestination", "GetV2LoggingOptions", "ListActiveViolations",
        "ListAttachedPolicies", "ListAuditFindings", "ListAuditMitigationActionsExecutions", "ListAuditMitigationActionsTasks",
        "ListAuditSuppressions", "ListAuditTasks", "ListAuthorizers", "ListBillingGroups", "ListCACertificates", "ListCertificateProviders",
        "ListCertificates", "ListCertificatesByCA", "ListCommandExecutions", "ListCommands", "ListCustomMetrics",
        "ListDetectMitigationActionsExecutions", "ListDetectMitigationActionsTasks", "ListDimensions", "ListDomainConfigurations",
        "ListFleetMetrics", "ListIndices", "ListJobExecutionsForJob", "ListJobExecutionsForThing", "ListJobTemplates", "ListJobs",
        "ListManagedJobTemplates", "ListMetricValues", "ListMitigationActions", "ListNamedShadowsForThing", "ListOTAUpdates",
        "ListOutgoingCertificates", "ListPackageVersions", "ListPackages", "ListPolicies", "ListPolicyPrincipals", "ListPolicyVersions",
        "ListPrincipalPolicies", "ListPrincipalThings", "ListPrincipalThingsV2", "ListProvisioningTemplateVersions", "ListProvisioningTemplates",
        "ListRelatedResourcesForAuditFinding", "ListRetainedMessages", "ListRoleAliases", "ListSbomValidationResults", "ListScheduledAudits",
        "ListSecurityProfiles", "ListSecurityProfilesForTarget", "ListStreams", "ListTagsForResource", "ListTargetsForPolicy",
        "ListTargetsForSecurityProfile", "ListThingGroups", "ListThingGroupsForThing", "ListThingPrincipals", "ListThingPrincipalsV2",
        "ListThingRegistrationTaskReports", "ListThingRegistrationTasks", "ListThingTypes", "ListThings", "ListThingsInBillingGroup",
        "ListThingsInThingGroup", "ListTopicRuleDestinations", "ListTopicRules", "ListV2LoggingLevels", "ListViolationEvents", "Publish",
        "PutVerificationStateOnViolation", "Receive", "RegisterCACertificate", "RegisterCertificate", "RegisterCertificateWithoutCA",
        "RegisterThing", "RejectCertificateTransfer", "RemoveThingFromBillingGroup", "RemoveThingFromThingGroup", "ReplaceTopicRule",
        "RetainPublish", "SearchIndex", "SetDefaultAuthorizer", "SetDefaultPolicyVersion", "SetLoggingOptions", "SetV2LoggingLevel",
        "SetV2LoggingOptions", "StartAuditMitigationActionsTask", "StartCommandExecution", "StartDetectMitigationActionsTask",
        "StartNextPendingJobExecution", "StartOnDemandAuditTask", "StartThingRegistrationTask", "StopThingRegistrationTask", "Subscribe",
        "TagResource", "TestAuthorization", "TestInvokeAuthorizer", "TransferCertificate", "UntagResource", "UpdateAccountAuditConfiguration",
        "UpdateAuditSuppression", "UpdateAuthorizer", "UpdateBillingGroup", "UpdateCACertificate", "UpdateCertificate", "UpdateCertificateProvider",
        "UpdateCommand", "UpdateCustomMetric", "UpdateDimension", "UpdateDomainConfiguration", "UpdateDynamicThingGroup",
        "UpdateEncryptionConfiguration", "UpdateEventConfigurations", "UpdateFleetMetric", "UpdateIndexingConfiguration", "UpdateJob",
        "UpdateJobExecution", "UpdateMitigationAction", "UpdatePackage", "UpdatePackageConfiguration", "UpdatePackageVersion",
        "UpdateProvisioningTemplate", "UpdateRoleAlias", "UpdateScheduledAudit", "UpdateSecurityProfile", "UpdateStream", "UpdateThing",
        "UpdateThingGroup", "UpdateThingGroupsForThing", "UpdateThingShadow", "UpdateThingType", "UpdateTopicRuleDestination",
        "ValidateSecurityProfileBehaviors",
    };

    /// <summary>
    /// The first <c>iot:</c> action in <paramref name="document"/> that AWS IoT does not define (a
    /// pattern with * or ? counts when it matches at least one), or null. Actions of other services
    /// (<c>greengrass:*</c>) are not checked: policies written for AWS carry them.
    /// </summary>
    public static string? FirstUnknown(PolicyDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        foreach (var statement in document.Statements)
        {
            foreach (var action in statement.Actions)
            {
                if (action == "*" || !action.StartsWith("iot:", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var name = action["iot:".Length..];
                var known = name.Contains('*', StringComparison.Ordinal) || name.Contains('?', StringComparison.Ordinal)
                    ? All.Any(a => Glob.Match(name.ToUpperInvariant(), a.ToUpperInvariant()))
                    : All.Contains(name);
                if (!known)
                {
                    return action;
                }
            }
        }

        return null;
    }

    /// <summary>The defined action nearest to <paramref name="action"/> (edit distance), as "iot:Name", for a "did you mean".</summary>
    public static string Closest(string action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var name = action.StartsWith("iot:", StringComparison.OrdinalIgnoreCase) ? action["iot:".Length..] : action;
        return "iot:" + All.MinBy(a => Distance(a.ToUpperInvariant(), name.ToUpperInvariant()));
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
