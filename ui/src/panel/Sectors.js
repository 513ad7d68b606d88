/*
 * Sectors: the list with each one's status (refreshed every few seconds),
 * create / edit / remove, and the selected Sector's ingress rules below.
 * Write buttons are shown only to users who may change Sectors
 * (Sys.Modify and SDN.Allocate on /); the agent checks again.
 */
Ext.define('OrbitLab.panel.Sectors', {
    extend: 'Ext.panel.Panel',
    alias: 'widget.orbitlabSectors',

    layout: 'border',
    border: false,

    initComponent: function () {
        let me = this;

        let rstore = Ext.create('OrbitLab.data.UpdateStore', { path: '/sectors' });
        let store = Ext.create('Proxmox.data.DiffStore', {
            rstore: rstore,
            sorters: 'name',
            autoDestroyRstore: true,
        });
        let reload = () => rstore.load();

        let ingressStore = Ext.create('Ext.data.Store', {
            fields: ['name', 'protocol', 'port', 'to_port', 'target', 'index'],
        });

        let grid, ingressGrid;
        let selected = () => grid.getSelection()[0];
        // The selected Sector's rules; set again only when they changed, so
        // that background refreshes keep the rule selected.
        let shownRules;
        let showIngress = function () {
            let rec = selected();
            ingressGrid.down('#addIngress').setDisabled(!rec);
            let rules = (rec && rec.get('spec').ingress) || [];
            let key = JSON.stringify([rec && rec.get('name'), rules]);
            if (key === shownRules) {
                return;
            }
            shownRules = key;
            ingressStore.setData(
                rules.map(function (rule, i) {
                    let target = rule.to_instance
                        ? gettext('instance') + ' ' + rule.to_instance
                        : rule.to_address
                          ? rule.to_address
                          : gettext('selector') + ' ' + rule.to_selector;
                    return {
                        index: i,
                        name: rule.name,
                        protocol: rule.protocol || 'tcp',
                        port: rule.port,
                        to_port: rule.to_port || rule.port,
                        target: target,
                    };
                }),
            );
        };

        // Add (index undefined) or edit one ingress rule of the selected
        // Sector.
        let editIngress = function (index) {
            let rec = selected();
            if (!rec) {
                return;
            }
            Ext.create('OrbitLab.window.IngressEdit', {
                autoShow: true,
                sector: OrbitLab.Utils.objectOf(rec),
                index: index,
                canApply: OrbitLab.Utils.may('sectors'),
                applied: reload,
            });
        };

        let editSector = function (object) {
            Ext.create('OrbitLab.window.SectorEdit', {
                autoShow: true,
                object: object,
                canApply: OrbitLab.Utils.may('sectors'),
                applied: reload,
            });
        };

        ingressGrid = Ext.create('Ext.grid.Panel', {
            region: 'south',
            itemId: 'ingress',
            title: gettext('Ingress rules'),
            height: 220,
            split: true,
            store: ingressStore,
            tbar: [
                {
                    text: gettext('Add'),
                    itemId: 'addIngress',
                    hidden: true,
                    disabled: true,
                    orbitlabPrivilege: 'sectors',
                    handler: () => editIngress(undefined),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Edit'),
                    itemId: 'editIngress',
                    hidden: true,
                    disabled: true,
                    orbitlabPrivilege: 'sectors',
                    handler: (btn, event, rule) => editIngress(rule.get('index')),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Remove'),
                    itemId: 'removeIngress',
                    hidden: true,
                    disabled: true,
                    orbitlabPrivilege: 'sectors',
                    handler: function (btn, event, rule) {
                        let rec = selected();
                        if (!rec) {
                            return;
                        }
                        let manifest = OrbitLab.Utils.manifest('Sector', {}, OrbitLab.Utils.objectOf(rec));
                        manifest.spec.ingress.splice(rule.get('index'), 1);
                        if (!manifest.spec.ingress.length) {
                            delete manifest.spec.ingress;
                        }
                        Ext.create('OrbitLab.window.PlanPreview', {
                            autoShow: true,
                            manifests: [manifest],
                            canApply: OrbitLab.Utils.may('sectors'),
                            applied: reload,
                        });
                    },
                },
            ],
            listeners: {
                itemdblclick: function (view, rule) {
                    if (OrbitLab.Utils.may('sectors')) {
                        editIngress(rule.get('index'));
                    }
                },
            },
            columns: [
                { header: gettext('Name'), dataIndex: 'name', width: 140, renderer: Ext.htmlEncode },
                { header: gettext('Protocol'), dataIndex: 'protocol', width: 80, renderer: Ext.htmlEncode },
                { header: gettext('Port'), dataIndex: 'port', width: 80, renderer: Ext.htmlEncode },
                { header: gettext('To'), dataIndex: 'target', flex: 1, renderer: Ext.htmlEncode },
                { header: gettext('To port'), dataIndex: 'to_port', width: 80, renderer: Ext.htmlEncode },
            ],
        });

        grid = Ext.create('Ext.grid.Panel', {
            region: 'center',
            itemId: 'sectors',
            store: store,
            stateful: true,
            stateId: 'grid-orbitlab-sectors',
            viewConfig: { trackOver: false },
            tbar: [
                {
                    text: gettext('Create'),
                    itemId: 'create',
                    hidden: true,
                    orbitlabPrivilege: 'sectors',
                    handler: () => editSector(undefined),
                },
                {
                    xtype: 'proxmoxButton',
                    text: gettext('Edit'),
                    itemId: 'edit',
                    hidden: true,
                    orbitlabPrivilege: 'sectors',
                    disabled: true,
                    handler: () => editSector(OrbitLab.Utils.objectOf(selected())),
                },
                OrbitLab.Utils.removeButton({
                    privilege: 'sectors',
                    collection: 'sectors',
                    message: gettext('Remove Sector {0}? Its gateway, DNS and addresses go with it.'),
                    waitMsgTarget: me,
                    done: reload,
                }),
                '->',
                {
                    xtype: 'tbtext',
                    itemId: 'count',
                    text: '',
                },
            ],
            columns: [
                { header: gettext('Name'), dataIndex: 'name', width: 140, renderer: Ext.htmlEncode },
                {
                    header: gettext('Status'),
                    dataIndex: 'phase',
                    width: 110,
                    renderer: OrbitLab.Utils.render_phase,
                },
                {
                    header: 'CIDR',
                    width: 130,
                    renderer: (v, m, rec) => Ext.htmlEncode(rec.get('spec').cidr),
                },
                {
                    header: gettext('Subnets'),
                    flex: 1,
                    renderer: (v, m, rec) =>
                        Ext.htmlEncode(
                            (rec.get('spec').subnets || []).map((s) => s.name + ' ' + s.cidr).join(', '),
                        ),
                },
                {
                    header: gettext('Alias'),
                    width: 160,
                    renderer: (v, m, rec) => Ext.htmlEncode(rec.get('spec').alias || ''),
                },
                {
                    header: gettext('Message'),
                    dataIndex: 'message',
                    flex: 2,
                    renderer: Ext.htmlEncode,
                },
            ],
            listeners: {
                selectionchange: showIngress,
                itemdblclick: function (view, rec) {
                    if (OrbitLab.Utils.may('sectors')) {
                        editSector(OrbitLab.Utils.objectOf(rec));
                    }
                },
            },
        });

        // Keep the ingress list in step with background updates.
        me.mon(rstore, 'load', function () {
            showIngress();
            grid.down('#count').setText(
                Ext.String.format(gettext('{0} Sectors'), rstore.getCount()),
            );
        });

        Ext.apply(me, {
            items: [grid, ingressGrid],
        });

        me.callParent();
        OrbitLab.Utils.monStoreErrors(grid, rstore);
        OrbitLab.Utils.applyPrivileges(me);
        OrbitLab.Utils.refreshWhileShown(me, [rstore], [store]);
    },
});
