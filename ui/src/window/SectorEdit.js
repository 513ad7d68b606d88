/*
 * Create or edit a Sector: name, alias, description, CIDR and subnets.
 * Ingress rules are edited in the Sectors view's lower grid.
 */
Ext.define('OrbitLab.window.SectorEdit', {
    extend: 'OrbitLab.window.Edit',
    alias: 'widget.orbitlabSectorEdit',

    kind: 'Sector',
    subject: gettext('Sector'),
    width: 520,

    // 'front=172.16.1.0/24, back=172.16.2.0/24' <-> [{name, cidr}].
    subnetsText: function (subnets) {
        return (subnets || []).map((s) => s.name + '=' + s.cidr).join(', ');
    },

    valuesOf: function (object) {
        let values = this.callParent([object]);
        let spec = object.spec || {};
        values['spec.alias'] = spec.alias || '';
        values['spec.cidr'] = spec.cidr;
        values['spec.subnets'] = this.subnetsText(spec.subnets);
        return values;
    },

    manifestOf: function (values) {
        let text = values['spec.subnets'] || '';
        values = Ext.apply({}, values);
        delete values['spec.subnets'];
        let manifest = this.callParent([values]);
        let subnets = text
            .split(/[\s,]+/)
            .filter((s) => s !== '')
            .map(function (item) {
                let [name, cidr] = item.split('=');
                return { name: name, cidr: cidr === undefined ? '' : cidr };
            });
        if (subnets.length) {
            manifest.spec.subnets = subnets;
        } else {
            delete manifest.spec.subnets;
        }
        return manifest;
    },

    items: [
        {
            xtype: 'inputpanel',
            column1: [
                {
                    xtype: 'textfield',
                    name: 'metadata.name',
                    fieldLabel: gettext('Name'),
                    allowBlank: false,
                    maxLength: 32,
                },
                {
                    xtype: 'textfield',
                    name: 'spec.cidr',
                    fieldLabel: 'CIDR',
                    allowBlank: false,
                    emptyText: '172.16.0.0/16',
                },
            ],
            column2: [
                {
                    xtype: 'textfield',
                    name: 'spec.alias',
                    fieldLabel: gettext('Alias'),
                    allowBlank: true,
                },
            ],
            columnB: [
                {
                    xtype: 'textfield',
                    name: 'spec.subnets',
                    fieldLabel: gettext('Subnets'),
                    emptyText: 'front=172.16.1.0/24, back=172.16.2.0/24',
                    allowBlank: true,
                },
                {
                    xtype: 'textfield',
                    name: 'metadata.description',
                    fieldLabel: gettext('Description'),
                    allowBlank: true,
                },
            ],
        },
    ],
});

/*
 * One ingress rule of a Sector: a port on the Sector gateway's Backplane
 * address forwarded to an instance, an address or every instance a label
 * selector picks. Saving previews the whole Sector with the rule changed.
 */
Ext.define('OrbitLab.window.IngressEdit', {
    extend: 'OrbitLab.window.Edit',
    alias: 'widget.orbitlabIngressEdit',

    kind: 'Sector',
    subject: gettext('Ingress rule'),
    width: 520,

    // The sector object (required) and the rule's index (edit) or
    // undefined (add).
    sector: undefined,
    index: undefined,

    initComponent: function () {
        let me = this;
        // The window edits the Sector; the form holds one rule.
        me.object = me.sector;
        me.callParent();
        // The base class took a Sector as an edit; a new rule is a create.
        me.isCreate = me.index === undefined;
        me.setTitle(
            Ext.String.format(me.isCreate ? gettext('Add: {0}') : gettext('Edit: {0}'), me.subject),
        );
        let nameField = me.down('field[name=name]');
        if (!me.isCreate) {
            let rule = me.sector.spec.ingress[me.index];
            let target = rule.to_instance
                ? 'to_instance'
                : rule.to_address
                  ? 'to_address'
                  : 'to_selector';
            me.setValues({
                name: rule.name,
                protocol: rule.protocol,
                port: rule.port,
                to_port: rule.to_port,
                target: target,
                to: rule[target],
            });
            nameField.setReadOnly(true);
        } else {
            nameField.setReadOnly(false);
        }
    },

    valuesOf: function (object) {
        return {};
    },

    // 'spec.ingress[N].port' of this rule (N its index, or the new last
    // one) names this form's 'port'; the targets (to_instance, to_address,
    // to_selector) are its 'to'. Errors of other rules stay in the message.
    formErrors: function (errors) {
        let me = this;
        let rules = (me.sector.spec.ingress || []).length;
        let index = me.index === undefined ? rules : me.index;
        let prefix = 'spec.ingress[' + index + '].';
        let out = {};
        Ext.Object.each(errors || {}, function (field, reason) {
            if (field.indexOf(prefix) !== 0) {
                return;
            }
            let name = field.substring(prefix.length).replace(/[.[].*$/, '');
            out[/^to_(instance|address|selector)$/.test(name) ? 'to' : name] = Ext.htmlEncode(reason);
        });
        return out;
    },

    manifestOf: function (values) {
        let me = this;
        let manifest = OrbitLab.Utils.manifest('Sector', {}, me.sector);
        let rule = {
            name: values.name,
            protocol: values.protocol,
            port: values.port === '' ? undefined : Number(values.port),
        };
        rule[values.target] = values.to;
        if (values.to_port !== '' && values.to_port !== undefined) {
            rule.to_port = Number(values.to_port);
        }
        let rules = (manifest.spec.ingress || []).slice();
        if (me.index === undefined) {
            rules.push(rule);
        } else {
            rules[me.index] = rule;
        }
        manifest.spec.ingress = rules;
        return manifest;
    },

    items: [
        {
            xtype: 'inputpanel',
            column1: [
                {
                    xtype: 'textfield',
                    name: 'name',
                    fieldLabel: gettext('Name'),
                    allowBlank: false,
                },
                {
                    xtype: 'proxmoxKVComboBox',
                    name: 'protocol',
                    fieldLabel: gettext('Protocol'),
                    value: 'tcp',
                    comboItems: [
                        ['tcp', 'TCP'],
                        ['udp', 'UDP'],
                    ],
                },
                {
                    xtype: 'proxmoxintegerfield',
                    name: 'port',
                    fieldLabel: gettext('Port'),
                    minValue: 1,
                    maxValue: 65535,
                    allowBlank: false,
                },
            ],
            column2: [
                {
                    xtype: 'proxmoxKVComboBox',
                    name: 'target',
                    fieldLabel: gettext('Target'),
                    value: 'to_instance',
                    comboItems: [
                        ['to_instance', gettext('Instance')],
                        ['to_address', gettext('Address')],
                        ['to_selector', gettext('Label selector')],
                    ],
                },
                {
                    xtype: 'textfield',
                    name: 'to',
                    fieldLabel: gettext('To'),
                    allowBlank: false,
                },
                {
                    xtype: 'proxmoxintegerfield',
                    name: 'to_port',
                    fieldLabel: gettext('To port'),
                    minValue: 1,
                    maxValue: 65535,
                    allowBlank: true,
                    emptyText: gettext('same'),
                },
            ],
        },
    ],
});
