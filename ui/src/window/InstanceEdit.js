/*
 * Create or edit an instance (kind Lxc): its Sector and subnet, template,
 * size, and power state. Fields the form does not show (secrets,
 * certificates, SSH keys, HA...) are kept as the manifest has them.
 */
Ext.define('OrbitLab.window.InstanceEdit', {
    extend: 'OrbitLab.window.Edit',
    alias: 'widget.orbitlabInstanceEdit',

    kind: 'Lxc',
    subject: gettext('Instance'),
    width: 600,

    valuesOf: function (object) {
        let values = this.callParent([object]);
        let spec = object.spec || {};
        ['sector', 'subnet', 'template', 'cores', 'memory', 'disk', 'node', 'address', 'state'].forEach(
            function (key) {
                if (spec[key] !== undefined) {
                    values['spec.' + key] = spec[key];
                }
            },
        );
        return values;
    },

    manifestOf: function (values) {
        values = Ext.apply({}, values);
        ['spec.cores', 'spec.memory', 'spec.disk'].forEach(function (key) {
            if (values[key] !== '' && values[key] !== undefined) {
                values[key] = Number(values[key]);
            }
        });
        if (values['spec.state'] === 'running') {
            // The default: not written, as the command writes it.
            values['spec.state'] = '';
        }
        return this.callParent([values]);
    },

    initComponent: function () {
        let me = this;
        me.items = [
            {
                xtype: 'inputpanel',
                column1: [
                    {
                        xtype: 'textfield',
                        name: 'metadata.name',
                        fieldLabel: gettext('Name'),
                        allowBlank: false,
                    },
                    {
                        xtype: 'combobox',
                        name: 'spec.sector',
                        fieldLabel: gettext('Sector'),
                        allowBlank: false,
                        editable: false,
                        queryMode: 'local',
                        displayField: 'name',
                        valueField: 'name',
                        store: {
                            model: 'orbitlab-object',
                            autoLoad: true,
                            proxy: { type: 'proxmox', url: OrbitLab.Utils.jsonBase + '/sectors' },
                        },
                    },
                    {
                        xtype: 'textfield',
                        name: 'spec.subnet',
                        fieldLabel: gettext('Subnet'),
                        emptyText: gettext('first'),
                        allowBlank: true,
                    },
                    {
                        xtype: 'textfield',
                        name: 'spec.address',
                        fieldLabel: gettext('Address'),
                        emptyText: gettext('from IPAM'),
                        allowBlank: true,
                    },
                ],
                column2: [
                    {
                        xtype: 'proxmoxintegerfield',
                        name: 'spec.cores',
                        fieldLabel: gettext('Cores'),
                        minValue: 1,
                        emptyText: '1',
                        allowBlank: true,
                    },
                    {
                        xtype: 'proxmoxintegerfield',
                        name: 'spec.memory',
                        fieldLabel: gettext('Memory') + ' (MiB)',
                        minValue: 16,
                        emptyText: '512',
                        allowBlank: true,
                    },
                    {
                        xtype: 'proxmoxintegerfield',
                        name: 'spec.disk',
                        fieldLabel: gettext('Disk size') + ' (GiB)',
                        minValue: 1,
                        emptyText: '8',
                        allowBlank: true,
                    },
                    {
                        xtype: 'textfield',
                        name: 'spec.node',
                        fieldLabel: gettext('Node'),
                        emptyText: gettext('placed by policy'),
                        allowBlank: true,
                    },
                    {
                        xtype: 'proxmoxKVComboBox',
                        name: 'spec.state',
                        fieldLabel: gettext('State'),
                        value: 'running',
                        comboItems: [
                            ['running', gettext('running')],
                            ['stopped', gettext('stopped')],
                        ],
                    },
                ],
                columnB: [
                    {
                        xtype: 'textfield',
                        name: 'spec.template',
                        fieldLabel: gettext('Template'),
                        allowBlank: false,
                        emptyText: 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst',
                    },
                    {
                        xtype: 'textfield',
                        name: 'metadata.description',
                        fieldLabel: gettext('Description'),
                        allowBlank: true,
                    },
                ],
            },
        ];
        me.callParent();
    },
});
