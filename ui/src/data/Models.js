/*
 * Models of what the OrbitLab agent answers.
 *
 * An object of a collection (GET /api2/json/orbitlab/<collection>) is
 * {apiVersion, kind, metadata: {name, labels, description}, spec, status};
 * status is null until an agent reported one, and then holds its phase
 * (as `orbitlab status` names it: Ready, Progressing, Failed, Unavailable,
 * Pending), its conditions (Ready, Progressing, Failed, each with a
 * message) and its outputs (node, vmid, address, fqdn, power, versions
 * held... by kind).
 */
Ext.define('orbitlab-object', {
    extend: 'Ext.data.Model',
    fields: [
        { name: 'name', mapping: 'metadata.name' },
        { name: 'description', mapping: 'metadata.description' },
        { name: 'labels', mapping: 'metadata.labels' },
        'kind',
        'spec',
        'status',
        {
            name: 'phase',
            calculate: (data) => (data.status && data.status.phase) || 'Pending',
        },
        {
            // The message of the condition that makes the phase.
            name: 'message',
            calculate: function (data) {
                let status = data.status || {};
                let conditions = status.conditions || [];
                let type = { Failed: 'Failed', Progressing: 'Progressing' }[status.phase] || 'Ready';
                let condition = conditions.find((c) => c.type === type);
                return (condition && condition.message) || '';
            },
        },
        {
            name: 'outputs',
            calculate: (data) => (data.status && data.status.outputs) || {},
        },
    ],
    idProperty: 'name',
});

// GET /nodes: each node's agent.
Ext.define('orbitlab-node', {
    extend: 'Ext.data.Model',
    fields: ['name', 'online', 'agent', 'version', 'heartbeat_age_s', 'owner', 'last_pass', 'vault', 'prerequisites'],
    idProperty: 'name',
});

// GET /vault/secrets: metadata only, never a value.
Ext.define('orbitlab-secret', {
    extend: 'Ext.data.Model',
    fields: ['path', 'latest', 'versions', 'updated'],
    idProperty: 'path',
});
