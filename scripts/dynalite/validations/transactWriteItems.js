// TransactWriteItems request validation for dynalite, in dynalite's own style.
//
// Added to the vendored dynalite by scripts/install-test-tools.sh (see
// scripts/dynalite/README.md): dynalite has no transactions, the DynamoDB store writes shows
// with TransactWriteItems, and moto, which has them, is too slow for the whole test suite.
//
// The wire shape is checked like every dynalite action (types, then constraints whose
// messages name the member, e.g. 'transactItems.1.member.put.tableName'); then each action
// goes through the same custom validation as its single-item call (putItem, updateItem,
// deleteItem), so a bad expression, attribute value or oversized item gets the same
// ValidationException message as it would from PutItem, UpdateItem or DeleteItem.

var putItem = require('./putItem'),
  updateItem = require('./updateItem'),
  deleteItem = require('./deleteItem')

var ACTIONS = [ 'ConditionCheck', 'Put', 'Delete', 'Update' ]

function tableName () {
  return {
    type: 'String',
    notNull: true,
    regex: '[a-zA-Z0-9_.-]+',
    lengthGreaterThanOrEqual: 3,
    lengthLessThanOrEqual: 255,
  }
}

function attributeMap () {
  return {
    type: 'Map<AttributeValue>',
    notNull: true,
    children: 'AttrStruct<ValueStruct>',
  }
}

// The members every action has besides its item or key.
function actionMembers (members) {
  members.TableName = tableName()
  members.ExpressionAttributeValues = {
    type: 'Map<AttributeValue>',
    children: 'AttrStruct<ValueStruct>',
  }
  members.ExpressionAttributeNames = {
    type: 'Map<java.lang.String>',
    children: 'String',
  }
  members.ReturnValuesOnConditionCheckFailure = {
    type: 'String',
    enum: [ 'ALL_OLD', 'NONE' ],
  }
  return members
}

exports.types = {
  ReturnConsumedCapacity: {
    type: 'String',
    enum: [ 'INDEXES', 'TOTAL', 'NONE' ],
  },
  ReturnItemCollectionMetrics: {
    type: 'String',
    enum: [ 'SIZE', 'NONE' ],
  },
  // Accepted and checked, but idempotency is not emulated: a repeated token runs again.
  ClientRequestToken: {
    type: 'String',
    lengthGreaterThanOrEqual: 1,
    lengthLessThanOrEqual: 36,
  },
  TransactItems: {
    type: 'List',
    notNull: true,
    lengthGreaterThanOrEqual: 1,
    lengthLessThanOrEqual: 100,
    children: {
      type: 'ValueStruct<TransactWriteItem>',
      children: {
        ConditionCheck: {
          type: 'FieldStruct<ConditionCheck>',
          children: actionMembers({
            Key: attributeMap(),
            ConditionExpression: { type: 'String', notNull: true },
          }),
        },
        Put: {
          type: 'FieldStruct<Put>',
          children: actionMembers({
            Item: attributeMap(),
            ConditionExpression: 'String',
          }),
        },
        Delete: {
          type: 'FieldStruct<Delete>',
          children: actionMembers({
            Key: attributeMap(),
            ConditionExpression: 'String',
          }),
        },
        Update: {
          type: 'FieldStruct<Update>',
          children: actionMembers({
            Key: attributeMap(),
            UpdateExpression: { type: 'String', notNull: true },
            ConditionExpression: 'String',
          }),
        },
      },
    },
  },
}

exports.custom = function (data, store) {
  for (var i = 0; i < data.TransactItems.length; i++) {
    var transactItem = data.TransactItems[i]
    var present = ACTIONS.filter(function (action) { return transactItem[action] != null })
    if (present.length > 1)
      return 'TransactItems can only contain one of Check, Put, Update or Delete'
    if (!present.length)
      return 'Invalid Request: TransactWriteRequest should contain Delete or Put or Update request'

    var action = transactItem[present[0]], msg
    switch (present[0]) {
    case 'Put':
      msg = putItem.custom(action, store)
      break
    case 'Update':
      msg = updateItem.custom(action, store)
      break
    default: // Delete and ConditionCheck: a key and a condition, like DeleteItem
      msg = deleteItem.custom(action, store)
    }
    if (msg) return msg
  }
  // Kept for the action: which of the four each item is.
  data._actions = data.TransactItems.map(function (transactItem) {
    return ACTIONS.filter(function (action) { return transactItem[action] != null })[0]
  })
}
