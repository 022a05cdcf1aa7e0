// TransactWriteItems for dynalite, in dynalite's own style.
//
// Added to the vendored dynalite by scripts/install-test-tools.sh (see
// scripts/dynalite/README.md): dynalite has no transactions, the DynamoDB store writes shows
// with TransactWriteItems, and moto, which has them, is too slow for the whole test suite.
//
// All or nothing, like DynamoDB:
// 1. every table is looked up and every item or key checked against its schema (the same
//    ValidationException messages as PutItem, UpdateItem and DeleteItem); two actions on
//    one item are refused;
// 2. every key is locked with the per-key locks PutItem, UpdateItem, DeleteItem and
//    BatchWriteItem take, so single-item writes to the same keys wait for the transaction
//    and the reverse. Tables are locked one after the other in name order, and each
//    table's keys in one step (the lock library queues a key list atomically), so two
//    transactions cannot deadlock;
// 3. every existing item is read and every condition evaluated (and every update
//    expression applied to a copy). If any fails, nothing is written and the answer is
//    TransactionCanceledException with one CancellationReason per action, in order;
// 4. otherwise every write is applied (indexes first, as PutItem does).
//
// Consumed capacity: a transactional write costs twice the units of the same single-item
// write, per item (a ConditionCheck is billed as a write of the item it reads); reported
// per table as a list, like BatchWriteItem.
//
// Not emulated: idempotency by ClientRequestToken (a repeated token runs again);
// TransactionConflict (two transactions on one item wait for each other here instead of one
// being cancelled); ItemCollectionMetrics; the 4 MB aggregate size limit.

var async = require('async'),
  db = require('../db'),
  updateItem = require('./updateItem')

module.exports = function transactWriteItems (store, data, cb) {
  var actions = data.TransactItems.map(function (transactItem, i) {
    var kind = data._actions[i]
    return { kind: kind, params: transactItem[kind] }
  })

  var tableNames = actions.map(function (action) { return action.params.TableName })
    .filter(function (name, i, names) { return names.indexOf(name) == i })
    .sort()

  var tables = Object.create(null)
  async.eachSeries(tableNames, function (name, cb) {
    store.getTable(name, function (err, table) {
      if (err) return cb(err)
      tables[name] = table
      cb()
    })
  }, function (err) {
    if (err) return cb(err)

    var invalid = prepare(actions, tables)
    if (invalid != null) return cb(invalid)

    lockAll(store, tableNames, actions, function (release) {
      cb = release(cb)
      run(store, data, actions, tables, cb)
    })
  })
}

// Checks each action against its table, and gives it its table and key.
function prepare (actions, tables) {
  var seen = Object.create(null)
  for (var i = 0; i < actions.length; i++) {
    var action = actions[i], params = action.params, table = tables[params.TableName], invalid
    if (action.kind == 'Put') {
      invalid = db.validateItem(params.Item, table)
    }
    else {
      invalid = db.validateKey(params.Key, table)
      if (invalid == null && action.kind == 'Update')
        invalid = db.validateUpdates(null, params._updates, table)
    }
    if (invalid != null) return invalid

    action.table = table
    action.key = db.createKey(action.kind == 'Put' ? params.Item : params.Key, table)
    var id = params.TableName + '\u0000' + action.key
    if (seen[id]) return db.validationError('Transaction request cannot include multiple operations on one item')
    seen[id] = true
  }
}

// Takes the item locks of every action (see the header), then calls fn(release).
function lockAll (store, tableNames, actions, fn) {
  var releases = []
  function next (t) {
    if (t == tableNames.length) {
      return fn(function (cb) {
        return releases.reduceRight(function (cb, release) { return release(cb) }, cb)
      })
    }
    var keys = actions.filter(function (action) { return action.params.TableName == tableNames[t] })
      .map(function (action) { return action.key })
      .sort()
    store.getItemDb(tableNames[t]).lock(keys, function (release) {
      releases.push(release)
      next(t + 1)
    })
  }
  next(0)
}

function run (store, data, actions, tables, cb) {
  async.eachSeries(actions, function (action, cb) {
    store.getItemDb(action.params.TableName).get(action.key, function (err, existingItem) {
      if (err && err.name != 'NotFoundError') return cb(err)
      action.existingItem = existingItem
      cb()
    })
  }, function (err) {
    if (err) return cb(err)

    var reasons = actions.map(evaluate.bind(null, store))
    if (reasons.some(function (reason) { return reason.Code != 'None' }))
      return cb(cancelledError(reasons))

    var response = {}, tableUnits = Object.create(null)
    actions.forEach(function (action) {
      var units = db.capacityUnits(action.kind == 'Put' || action.kind == 'Update' ? action.newItem : action.existingItem)
      if (action.existingItem != null)
        units = Math.max(units, db.capacityUnits(action.existingItem))
      tableUnits[action.params.TableName] = (tableUnits[action.params.TableName] || 0) + 2 * units
    })
    if (~[ 'TOTAL', 'INDEXES' ].indexOf(data.ReturnConsumedCapacity)) {
      response.ConsumedCapacity = Object.keys(tableUnits).map(function (table) {
        return {
          CapacityUnits: tableUnits[table],
          TableName: table,
          Table: data.ReturnConsumedCapacity == 'INDEXES' ? { CapacityUnits: tableUnits[table] } : undefined,
        }
      })
    }

    async.eachSeries(actions, function (action, cb) {
      if (action.kind == 'ConditionCheck') return cb()
      var itemDb = store.getItemDb(action.params.TableName)
      var newItem = action.kind == 'Delete' ? null : action.newItem
      db.updateIndexes(store, action.table, action.existingItem, newItem, function (err) {
        if (err) return cb(err)
        if (newItem == null) return itemDb.del(action.key, cb)
        itemDb.put(action.key, newItem, cb)
      })
    }, function (err) {
      if (err) return cb(err)
      cb(null, response)
    })
  })
}

// The action's CancellationReason; for a Put or Update that may go ahead, sets newItem.
function evaluate (store, action) {
  var params = action.params, existingItem = action.existingItem
  if (db.checkConditional(params, existingItem) != null) {
    var reason = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }
    if (existingItem && params.ReturnValuesOnConditionCheckFailure == 'ALL_OLD')
      reason.Item = existingItem
    return reason
  }
  if (action.kind == 'Put') {
    action.newItem = params.Item
  }
  else if (action.kind == 'Update') {
    var item = existingItem ? updateItem.deepClone(existingItem) : updateItem.deepClone(params.Key)
    var err = updateItem.applyUpdateExpression(params._updates.sections, action.table, item)
    if (err) return { Code: 'ValidationError', Message: err.body.message }
    if (db.itemSize(item) > store.options.maxItemSize)
      return { Code: 'ValidationError', Message: 'Item size to update has exceeded the maximum allowed size' }
    action.newItem = item
  }
  return { Code: 'None' }
}

function cancelledError (reasons) {
  var msg = 'Transaction cancelled, please refer cancellation reasons for specific reasons [' +
    reasons.map(function (reason) { return reason.Code }).join(', ') + ']'
  var err = new Error(msg)
  err.statusCode = 400
  err.body = {
    __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
    Message: msg,
    CancellationReasons: reasons,
  }
  return err
}
