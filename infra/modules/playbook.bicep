// The Sentinel playbook: a Consumption Logic App with the Microsoft Sentinel
// incident trigger. By default it puts the trigger body, unchanged, on the
// triage-requests queue (Queue REST API, authenticated with the Logic App's
// own managed identity: no key, no SAS). With useHttpTrigger it POSTs the same
// body to /api/triage with a function key instead.

@description('Name of the Logic App.')
param name string

@description('Region of the Logic App and its API connection.')
param location string

@description('Tags applied to the Logic App and its API connection.')
param tags object

@description('false: enqueue the incident (recommended). true: call POST /api/triage with a function key.')
param useHttpTrigger bool = false

@description('Queue endpoint of the storage account, https://<account>.queue.core.windows.net/.')
param queueEndpoint string

@description('Queue the function\'s queue trigger reads.')
param queueName string

@description('Name of the Function App (its host key is read only when useHttpTrigger is true).')
param functionAppName string

@description('Host name of the Function App, <name>.azurewebsites.net.')
param functionHostName string

@description('Log Analytics workspace that receives the WorkflowRuntime diagnostic category.')
param logAnalyticsId string

// Queue messages are base64 text: the Functions queue trigger decodes base64 by
// default (host.json extensions.queues.messageEncoding = "base64").
// A message may hold at most 64 KiB; an incident too large for that is sent
// without its Alerts array (the entities and times the triage needs stay).
var maxQueueMessageChars = 65536

var sentinelConnectionName = '${name}-azuresentinel'

var incidentExpression = 'base64(string(triggerBody()))'
var slimIncidentExpression = 'base64(string(setProperty(triggerBody(), \'object\', setProperty(triggerBody()?[\'object\'], \'properties\', removeProperty(triggerBody()?[\'object\']?[\'properties\'], \'Alerts\')))))'

var queueRequest = {
  method: 'POST'
  uri: '${queueEndpoint}${queueName}/messages'
  headers: {
    'x-ms-version': '2021-12-02'
    'x-ms-date': '@{utcNow(\'R\')}'
    'Content-Type': 'application/xml'
  }
  authentication: {
    type: 'ManagedServiceIdentity'
    audience: 'https://storage.azure.com/'
  }
}

var queueActions = {
  Encode_incident: {
    type: 'Compose'
    runAfter: {}
    inputs: '@${incidentExpression}'
  }
  Fits_in_one_queue_message: {
    type: 'If'
    runAfter: {
      Encode_incident: [
        'Succeeded'
      ]
    }
    expression: {
      and: [
        {
          lessOrEquals: [
            '@length(outputs(\'Encode_incident\'))'
            maxQueueMessageChars
          ]
        }
      ]
    }
    actions: {
      Put_incident_on_triage_queue: {
        type: 'Http'
        runAfter: {}
        inputs: union(queueRequest, {
          body: '<QueueMessage><MessageText>@{outputs(\'Encode_incident\')}</MessageText></QueueMessage>'
        })
      }
    }
    else: {
      actions: {
        Put_incident_without_alerts_on_triage_queue: {
          type: 'Http'
          runAfter: {}
          inputs: union(queueRequest, {
            body: '<QueueMessage><MessageText>@{${slimIncidentExpression}}</MessageText></QueueMessage>'
          })
        }
      }
    }
  }
}

var httpActions = {
  Send_incident_to_triage_function: {
    type: 'Http'
    runAfter: {}
    // The function answers 202 (async mode): do not poll a Location header.
    operationOptions: 'DisableAsyncPattern'
    inputs: {
      method: 'POST'
      uri: 'https://${functionHostName}/api/triage'
      headers: {
        'Content-Type': 'application/json'
        'x-functions-key': '@parameters(\'functionKey\')'
        // Answer 202 at once and triage from the queue: a Consumption Logic App
        // waits at most 120 s for a response, less than the query budget.
        Prefer: 'respond-async'
      }
      body: '@triggerBody()'
      retryPolicy: {
        type: 'exponential'
        count: 4
        interval: 'PT30S'
      }
    }
    // Keep the function key out of the run history.
    runtimeConfiguration: {
      secureData: {
        properties: [
          'inputs'
        ]
      }
    }
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// Microsoft Sentinel connector, authenticated with the Logic App's managed identity.
resource sentinelConnection 'Microsoft.Web/connections@2016-06-01' = {
  name: sentinelConnectionName
  location: location
  tags: tags
  kind: 'V1'
  properties: {
    displayName: sentinelConnectionName
    customParameterValues: {}
    parameterValueType: 'Alternative'
    api: {
      id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
    }
  }
}

resource playbook 'Microsoft.Logic/workflows@2019-05-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      parameters: {
        '$connections': {
          defaultValue: {}
          type: 'Object'
        }
        functionKey: {
          defaultValue: ''
          type: 'SecureString'
        }
      }
      triggers: {
        Microsoft_Sentinel_incident: {
          type: 'ApiConnectionWebhook'
          inputs: {
            body: {
              callback_url: '@{listCallbackUrl()}'
            }
            host: {
              connection: {
                name: '@parameters(\'$connections\')[\'azuresentinel\'][\'connectionId\']'
              }
            }
            path: '/incident-creation'
          }
        }
      }
      actions: useHttpTrigger ? httpActions : queueActions
      outputs: {}
    }
    parameters: {
      '$connections': {
        value: {
          azuresentinel: {
            connectionId: sentinelConnection.id
            connectionName: sentinelConnectionName
            id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
            connectionProperties: {
              authentication: {
                type: 'ManagedServiceIdentity'
              }
            }
          }
        }
      }
      // A function key exists in the playbook only in the HTTP variant.
      functionKey: {
        value: useHttpTrigger ? listKeys('${site.id}/host/default', '2024-04-01').functionKeys.default : ''
      }
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'playbook-to-log-analytics'
  scope: playbook
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'WorkflowRuntime'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = playbook.id
output name string = playbook.name
output principalId string = playbook.identity.principalId
