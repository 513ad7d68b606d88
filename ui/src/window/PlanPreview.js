/*
 * "What apply would change", before anything changes: the agent checks the
 * manifests as an apply would (POST /orbitlab-apply?dry-run=1: the whole
 * stored set with these manifests in it is validated; nothing is written)
 * and answers each object's action. Apply sends the same manifests for
 * real. Without the privilege to change, the preview is all there is.
 */
Ext.define('OrbitLab.window.PlanPreview', {
    extend: 'Ext.window.Window',
    alias: 'widget.orbitlabPlanPreview',

    title: gettext('Plan preview'),
    modal: true,
    width: 720,
    height: 460,
    layout: 'border',
    bodyPadding: 0,

    // The manifests to apply (objects).
    manifests: [],
    // Whether this user may apply (the agent checks again); without it the
    // preview is all there is.
    canApply: false,
    // Called after a successful apply with the changes.
    applied: Ext.emptyFn,
    // Called with the failed response when the check refuses the manifests.
    refused: Ext.emptyFn,

    manifestText: function () {
        return this.manifests.map((m) => JSON.stringify(m, null, 2)).join('\n---\n') + '\n';
    },

    request: function (dryRun, success, failure) {
        let me = this;
        OrbitLab.Utils.API2Request({
            url: '-apply?source=web-ui' + (dryRun ? '&dry-run=1' : ''),
            method: 'POST',
            rawData: me.manifestText(),
            headers: { 'Content-Type': 'application/yaml' },
            waitMsgTarget: me,
            success: success,
            failure: failure,
        });
    },

    check: function () {
        let me = this;
        me.request(
            true,
            function (response) {
                let changes = response.result.data || [];
                me.down('grid').getStore().setData(changes);
                let changing = changes.some((c) => c.action !== 'unchanged');
                let btn = me.down('#apply');
                btn.setDisabled(!me.canApply || !changing);
                me.down('#summary').update(
                    Ext.htmlEncode(
                        changing
                            ? gettext('Apply would make these changes; nothing has changed yet.')
                            : gettext('Nothing would change.'),
                    ),
                );
            },
            function (response) {
                me.refused(response);
                Ext.Msg.alert(gettext('Error'), response.htmlStatus);
                me.close();
            },
        );
    },

    initComponent: function () {
        let me = this;

        Ext.apply(me, {
            items: [
                {
                    xtype: 'component',
                    itemId: 'summary',
                    region: 'north',
                    padding: 8,
                    html: gettext('Checking...'),
                },
                {
                    xtype: 'grid',
                    region: 'center',
                    itemId: 'changes',
                    store: { fields: ['kind', 'name', 'action'] },
                    columns: [
                        { header: gettext('Kind'), dataIndex: 'kind', width: 110, renderer: Ext.htmlEncode },
                        { header: gettext('Name'), dataIndex: 'name', flex: 1, renderer: Ext.htmlEncode },
                        {
                            header: gettext('Action'),
                            dataIndex: 'action',
                            width: 140,
                            renderer: function (value) {
                                let icon = {
                                    created: 'fa-plus-circle good',
                                    configured: 'fa-pencil-square-o warning',
                                    deleted: 'fa-minus-circle critical',
                                    unchanged: 'fa-circle-o',
                                }[value] || 'fa-question';
                                return '<i class="fa fa-fw ' + icon + '"></i> ' + Ext.htmlEncode(value);
                            },
                        },
                    ],
                },
                {
                    xtype: 'textarea',
                    region: 'south',
                    itemId: 'manifests',
                    height: 170,
                    split: true,
                    readOnly: true,
                    fieldStyle: 'font-family: monospace; font-size: 11px;',
                    value: me.manifestText(),
                },
            ],
            buttons: [
                {
                    text: gettext('Cancel'),
                    handler: () => me.close(),
                },
                {
                    text: gettext('Apply'),
                    itemId: 'apply',
                    disabled: true,
                    hidden: !me.canApply,
                    handler: function () {
                        me.request(
                            false,
                            function (response) {
                                me.applied(response.result.data || []);
                                me.close();
                            },
                            function (response) {
                                me.refused(response);
                                Ext.Msg.alert(gettext('Error'), response.htmlStatus);
                            },
                        );
                    },
                },
            ],
        });

        me.callParent();
        me.on('show', () => me.check(), me, { single: true });
    },
});
